"""Where nbgrader users work: JupyterLab for staff on the course, and which of nbgrader's extensions each side sees.

`start_lab` runs JupyterLab in the course root, on loopback, so that formgrader
and nbgrader's panels load the course's nbgrader_config.py (which loads
course_config.py) whatever folder `coursekit lab` was typed in.

`set_up_extensions` enables nbgrader's extensions for a role. Installing the kit
installs nbgrader, and nbgrader enables all of its extensions for everyone: a
student would see formgrader and "Create assignment". Students need only the
assignment list (fetch, submit) and Validate.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .course import CourseError

# nbgrader 0.9's JupyterLab plugins and server extensions that only staff use
STAFF_LAB_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment")
STAFF_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader",)
# what students use: the Assignments panel (fetch, submit), its course list, and Validate
STUDENT_LAB_PLUGINS = ("@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:validate-assignment")
STUDENT_SERVER_EXTENSIONS = ("nbgrader.server_extensions.assignment_list", "nbgrader.server_extensions.course_list",
                             "nbgrader.server_extensions.validate_assignment")


def jupyter_command() -> str:
    return str(Path(sys.executable).parent / "jupyter")


def config_dir(level: str) -> Path:
    """The Jupyter configuration folder of a level: "sys_prefix" (this Python environment: a student's, or the
    hub's single-user one), "user" (~/.jupyter, or $JUPYTER_CONFIG_DIR) or "system" (/etc/jupyter)."""
    from jupyter_core.paths import ENV_CONFIG_PATH, SYSTEM_CONFIG_PATH, jupyter_config_dir

    return Path({"sys_prefix": ENV_CONFIG_PATH[0], "user": jupyter_config_dir(), "system": SYSTEM_CONFIG_PATH[0]}[level])


def lab_plugin_commands(role: str, level: str) -> list[list[str]]:
    """The `jupyter labextension` commands that show a role nbgrader's JupyterLab plugins, and hide the rest."""
    staff = "enable" if role == "staff" else "disable"
    return ([[jupyter_command(), "labextension", staff, f"--level={level}", plugin] for plugin in STAFF_LAB_PLUGINS]
            + [[jupyter_command(), "labextension", "enable", f"--level={level}", plugin] for plugin in STUDENT_LAB_PLUGINS])


def server_extensions(role: str) -> dict[str, bool]:
    return {**{name: role == "staff" for name in STAFF_SERVER_EXTENSIONS}, **{name: True for name in STUDENT_SERVER_EXTENSIONS}}


def set_up_extensions(role: str, level: str) -> list[str]:
    """Show a role nbgrader's extensions as it needs them; return what was done, in words and commands.

    The JupyterLab plugins go through `jupyter labextension`. The server extensions are written straight into
    the level's jupyter_server_config.json, which overrides the jupyter_server_config.d/nbgrader.json that
    nbgrader installs: `jupyter server extension disable nbgrader.server_extensions.formgrader` refuses to
    write it, since that module has no _jupyter_server_extension_points for its validation to find.
    """
    from jupyter_server.config_manager import BaseJSONConfigManager

    done = []
    for command in lab_plugin_commands(role, level):
        result = subprocess.run(command, capture_output=True, text=True)
        shown = " ".join(["jupyter", *command[1:]])
        if result.returncode != 0:
            raise CourseError(f"`{shown}` failed: {(result.stderr or result.stdout).strip()[-500:]}")
        done.append(shown)
    folder = config_dir(level)
    extensions = server_extensions(role)
    try:
        BaseJSONConfigManager(config_dir=str(folder)).update("jupyter_server_config", {"ServerApp": {"jpserver_extensions": extensions}})
    except OSError as exc:
        raise CourseError(f"{folder / 'jupyter_server_config.json'} could not be written: {exc.strerror or exc}") from exc
    done.append(f"{folder / 'jupyter_server_config.json'}: " + ", ".join(f"{name} {'on' if on else 'off'}" for name, on in extensions.items()))
    return done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command(root: Path, port: int, token: str) -> list[str]:
    command = [jupyter_command(), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root without it (containers, CI)
    return command


def start_lab(root: Path, port: int | None = None, wait_seconds: float = 120) -> tuple[subprocess.Popen, str]:
    """JupyterLab in the course root (formgrader reads nbgrader_config.py from the folder it starts in);
    return the process and its URL, once it answers."""
    port = port or free_port()
    token = secrets.token_hex(16)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    server = subprocess.Popen(lab_command(root, port, token), cwd=root, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            return server, f"{base}/lab?token={token}"
        except OSError:
            if server.poll() is not None:
                raise CourseError(f"JupyterLab stopped at start (exit status {server.returncode}): see its log above")
            if time.monotonic() > deadline:
                server.terminate()
                raise CourseError(f"JupyterLab did not answer on {base} within {wait_seconds:.0f} s")
            time.sleep(0.3)
