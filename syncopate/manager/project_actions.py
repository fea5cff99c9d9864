"""The controller's actions on projects: add, set, write variables, remove, start, stop, ...

Each action is one durable `Cluster._write`: the project's record changes in memory and in the
store together, its node hears at once, and /events is told once the write is committed. An
action on an every-node parent acts on each of its copies too (every_node.py); a project that
wants to run and has no node is placed (placement.py). `set` is changes.py's. The routes call
these through the `Cluster` facade, which keeps their names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from syncopate.errors import Conflict
from syncopate.manager import changes, secret_box
from syncopate.manager.every_node import Copies, is_parent
from syncopate.manager.placement import Placement
from syncopate.manager.records import ProjectRecord, utc_now
from syncopate.project_protocol import AddProject, RemoveProject, SetProject
from syncopate.states import MANAGER_STATUSES, Desired, ProjectStatus

if TYPE_CHECKING:
    from syncopate.manager.cluster import Cluster


def by(done: str, user: str) -> str:
    """The note an action leaves in a project's log: `stopped by alice` (`stopped`: no name)."""
    return f"{done} by {user}" if user else done


def _named_or_top(projects: list[ProjectRecord], names: list[str]) -> list[str]:
    """The names to answer with after an action: top-level projects, and copies named."""
    return [p.name for p in projects if p.copy_of is None or p.name in names]


class ProjectActions:
    """What a person or a tool asks of projects through POST /controller."""

    def __init__(self, cluster: Cluster, placement: Placement, copies: Copies) -> None:
        self.cluster = cluster
        self.state = cluster.state
        self.placement = placement
        self.copies = copies

    def add(self, spec: AddProject) -> ProjectRecord:
        """A new project: placed now when it should start, or every-node copies made."""
        cluster = self.cluster
        if spec.name in self.state.projects:
            raise Conflict(f"a project named {spec.name!r} exists already")
        project = ProjectRecord(
            name=spec.name,
            url=spec.url,
            initial_variables=dict(spec.initial_variables),
            variables=dict(spec.initial_variables),
            command=spec.command,
            ref=spec.ref,
            ram=spec.ram,
            disk=spec.disk,
            exclusive=spec.exclusive,
            env=dict(spec.env),
            secrets=dict(spec.secrets),
            constraints=list(spec.on),
            every_node=spec.every_node,
            stay=spec.stay,
            health_cmd=spec.health_cmd,
            health_http=spec.health_http,
            health_interval=spec.health_interval,
            health_timeout=spec.health_timeout,
            health_retries=spec.health_retries,
            grace=spec.grace,
            max_ram=spec.max_ram,
            desired=Desired.RUNNING if spec.start else Desired.STOPPED,
            created_at=utc_now(),
        )
        with cluster._write(durable=True) as undo:
            undo.keep_entry(self.state.projects, project.name)
            self.state.projects[project.name] = project
            if spec.start and not spec.every_node:
                self.placement.place(project)
            else:
                if not spec.start:
                    cluster._set_status(project, ProjectStatus.STOPPED)
                cluster.store.save_project(project)
            if spec.every_node:
                self.copies.reconcile_parents([project])  # never placed itself
            cluster._announce("project", project.name)
        return project

    def set(self, spec: SetProject, user: str) -> tuple[ProjectRecord, list[str]]:
        """Change a project in place (changes.py); returns it and the names of changed fields."""
        cluster = self.cluster
        with cluster._write(durable=True):
            project, fields = changes.apply(cluster, cluster._project(spec.name), spec, user)
            if fields and is_parent(project):
                # Every copy takes the change, and its log says so.
                self.copies.follow(project, fields, changes.changed_by(user, fields))
        return project, fields

    def set_variables(self, names: list[str], values: dict[str, Any], user: str) -> list[str]:
        """Write persistent variables into the named projects (all when none are named)."""
        projects = self.copies.expand(self.cluster.select(names))  # a parent: into each copy too
        changes.set_variables(self.cluster, projects, values, user)
        return _named_or_top(projects, names)

    def remove(self, spec: RemoveProject) -> None:
        """Delete a project, its log and its copies; its URL confirms the name."""
        cluster = self.cluster
        project = cluster._project(spec.name)
        # Answers show a password in the URL masked; that form confirms too.
        if spec.url not in (project.url, secret_box.mask_url(project.url)):
            raise Conflict(
                f"URL {secret_box.mask_any_url(spec.url)!r} does not match project "
                f"{project.name!r} (remove needs the project's URL to confirm)"
            )
        with cluster._write(durable=True) as undo:
            cluster.store.delete_project(project.name)
            cluster.store.delete_log_lines(project.name)
            self.placement.unassign(project)
            self.placement.set_moving(project, None)
            self.copies.remove_all(project)
            undo.keep_entry(self.state.projects, project.name)
            del self.state.projects[project.name]
            cluster._announce("project", project.name)

    def _for_each(
        self, names: Iterable[str], change: Callable[[ProjectRecord], None], said: str = ""
    ) -> list[str]:
        """Apply a controller change to the named projects (all when none), durably; `said`
        (`stopped by alice`) goes into each one's log."""
        cluster = self.cluster
        names = list(names)
        projects = self.copies.expand(cluster.select(names))  # a parent acts on every copy
        with cluster._write(durable=True):
            for project in projects:
                cluster._keep(project)
                change(project)
                if said:
                    cluster.log.note(project, said)
                unplaced = project.node is None and not is_parent(project)  # copies run a parent
                if unplaced and project.desired is Desired.RUNNING:
                    self.placement.place(project)
                else:
                    cluster.store.save_project(project)
                    cluster._changed(project.node)
            for project in projects:
                cluster._announce("project", project.name)
        return _named_or_top(projects, names)

    def start(self, names: Iterable[str], user: str = "") -> list[str]:
        def want_running(project: ProjectRecord) -> None:
            project.desired = Desired.RUNNING
            if project.status is ProjectStatus.FAILED and project.node is not None:
                project.restart += 1  # its node tries again (after a crash loop, say)

        return self._for_each(names, want_running, by("started", user))

    def stop(self, names: Iterable[str], user: str = "") -> list[str]:
        def want_stopped(project: ProjectRecord) -> None:
            project.desired = Desired.STOPPED
            if project.node is None and project.status in MANAGER_STATUSES:
                self.cluster._set_status(project, ProjectStatus.STOPPED, "")

        return self._for_each(names, want_stopped, by("stopped", user))

    def restart(self, names: Iterable[str], user: str = "") -> list[str]:
        def bump(project: ProjectRecord) -> None:
            project.restart += 1
            project.desired = Desired.RUNNING

        return self._for_each(names, bump, by("restarted", user))

    def reset(self, names: Iterable[str], user: str = "") -> list[str]:
        def back_to_initial(project: ProjectRecord) -> None:
            project.variables = dict(project.initial_variables)
            project.epoch += 1
            if project.node is not None:
                self.cluster._set_status(project, ProjectStatus.PENDING)

        return self._for_each(names, back_to_initial, by("reset", user))

    def rollout_retry(self, name: str) -> ProjectRecord:
        """`rollout --retry`: its node may try the bad commit it rolled back from again."""
        project = self.cluster._project(name)
        if project.bad_commit is None:
            raise Conflict(
                f"project {name!r} has no bad commit to retry: it has not rolled back "
                f"(status {project.status.value})"
            )

        def bump(project: ProjectRecord) -> None:
            project.rollout_retry += 1

        self._for_each([name], bump)
        return project
