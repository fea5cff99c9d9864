#!/bin/sh
# A line every second: the time, how long this run has lasted and where it runs, so that
# `syncopate logs ticker --follow` always has something to show. No state: after a move it
# starts again at tick 1 (the counter example shows how to carry state across).
start=$(date +%s)
tick=0
trap 'echo "ticker: stopped after $tick ticks"; exit 0' TERM INT
echo "ticker: starting on ${SYNCOPATE_NODE:-this machine}"
while :; do
    tick=$((tick + 1))
    now=$(date +%s)
    echo "$(date '+%Y-%m-%d %H:%M:%S') tick $tick, up $((now - start))s on ${SYNCOPATE_NODE:-this machine}"
    # In the background, so that a SIGTERM runs the trap at once (a shell waits for a
    # foreground command before it runs a trap) and no "Terminated" note lands in the log.
    sleep 1 &
    wait $!
done
