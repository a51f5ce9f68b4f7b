"""The console script's default for JAX's persistent compilation cache."""

from __future__ import annotations

import stat
from pathlib import Path

from edgeloop.learning.compile_cache import CACHE_VARIABLE, default_compile_cache
from tests.integration.procs import run_script


def test_the_default_is_a_private_directory_in_the_users_cache(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    chosen = default_compile_cache(env)
    assert chosen == str(tmp_path / "xdg" / "edgeloop" / "jax")
    assert env[CACHE_VARIABLE] == chosen
    assert stat.S_IMODE(Path(chosen).stat().st_mode) == 0o700
    home_only = {"HOME": str(tmp_path / "home")}
    assert default_compile_cache(home_only) == str(tmp_path / "home/.cache/edgeloop/jax")


def test_a_directory_chosen_already_or_an_empty_one_is_left_as_it_is(tmp_path: Path) -> None:
    chosen = {CACHE_VARIABLE: str(tmp_path / "mine"), "HOME": str(tmp_path)}
    assert default_compile_cache(chosen) == str(tmp_path / "mine")
    off = {CACHE_VARIABLE: "", "HOME": str(tmp_path)}
    assert default_compile_cache(off) is None
    assert off[CACHE_VARIABLE] == ""
    assert not (tmp_path / ".cache").exists()


def test_an_unwritable_home_runs_without_the_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = {"XDG_CACHE_HOME": str(blocker)}
    assert default_compile_cache(env) is None
    assert CACHE_VARIABLE not in env


PROBE = """
import sys
sys.argv = ["edgeloop", "--version"]
from edgeloop import cli
try:
    cli.main()
except SystemExit:
    pass
import jax
print("cache:", jax.config.jax_compilation_cache_dir)
"""


def test_the_console_script_sets_it_before_jax_loads(tmp_path: Path) -> None:
    """What a node started from the CLI compiles with: JAX's own setting names it."""
    env = {"XDG_CACHE_HOME": str(tmp_path), "HOME": str(tmp_path), "JAX_PLATFORMS": "cpu"}
    run = run_script(PROBE, env)
    assert run.returncode == 0, run.stderr
    assert f"cache: {tmp_path / 'edgeloop' / 'jax'}" in run.stdout
