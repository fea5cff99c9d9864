from syncopate.cli.main import run

run()
