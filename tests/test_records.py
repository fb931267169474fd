"""Start records are believed only if trustworthy, and written safely
(issue 9, items 2 and 9/21's "errors name the file")."""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
from pathlib import Path

import pytest
from support import AS_NOBODY, Cli, root_only

from daemonkit import record
from daemonkit.errors import DaemonError, RecordError


def as_nobody_write(path: Path, text: str) -> None:
    subprocess.run([*AS_NOBODY, "sh", "-c", 'cat > "$0"', str(path)], input=text, text=True, check=True)


def planted_record(cli: Cli, pidfile: Path, command: list[str]) -> str:
    """A record as daemonkit writes it, for ``pidfile``, running ``command``."""
    code, _, err = cli("start", "--name", "model", "--", cli.sleep, "60")
    assert code == 0, err
    data = json.loads((cli.rundir / "model.json").read_text())
    cli("stop", "model")
    data["command"] = data["spawn"]["argv"] = command
    data["name"] = pidfile.stem
    return json.dumps(data)


@root_only
def test_restart_refuses_a_record_planted_in_a_sticky_directory(
    cli: Cli, public: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sticky = public / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    pwned = public / "pwned"
    text = planted_record(cli, sticky / "evil.pid", ["/bin/touch", str(pwned)])
    as_nobody_write(sticky / "evil.json", text)
    monkeypatch.setenv("DAEMONKIT_RUNDIR", str(sticky))
    code, out, err = cli("restart", "evil")
    assert code == 1, out
    assert err == (
        f"daemonkit: start record {sticky / 'evil.json'}: directory {sticky} is writable by other users;"
        " a record there could be planted, not trusting it\n"
    )
    assert not pwned.exists()
    code, out, _ = cli("status", "evil")
    assert "touch" not in out


@root_only
def test_a_record_owned_by_another_user_is_not_believed(cli: Cli, public: Path) -> None:
    pwned = public / "pwned"
    text = planted_record(cli, cli.rundir / "evil.pid", ["/bin/touch", str(pwned)])
    (cli.rundir / "evil.json").write_text(text)
    os.chown(cli.rundir / "evil.json", 65534, 65534)  # as if its owner had written it
    code, _, err = cli("restart", "evil")
    assert code == 1
    assert "is owned by uid 65534, neither you nor root; not trusting it" in err
    assert not pwned.exists()
    code, out, _ = cli("list")
    assert "touch" not in out
    code, out, _ = cli("status", "--json", "evil")
    assert json.loads(out)["command"] is None


def test_a_symlinked_or_world_writable_record_is_not_believed(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text('{"command": ["x"]}')
    (tmp_path / "a.json").symlink_to(real)
    with pytest.raises(RecordError, match="is a symbolic link"):
        record.read(str(tmp_path / "a.pid"))
    os.chmod(real, 0o666)
    with pytest.raises(RecordError, match="writable by other users"):
        record.read(str(tmp_path / "real.pid"))
    os.mkfifo(tmp_path / "f.json")
    with pytest.raises(RecordError, match="not a regular file"):
        record.read(str(tmp_path / "f.pid"))  # and does not block


def test_a_missing_record_or_directory_is_none(tmp_path: Path) -> None:
    assert record.read(str(tmp_path / "none.pid")) is None
    assert record.read(str(tmp_path / "no" / "such.pid")) is None
    record.write(str(tmp_path / "ok.pid"), {"name": "ok"})
    assert record.read(str(tmp_path / "ok.pid")) == {"name": "ok"}


def test_write_replaces_a_planted_symlink_and_leaves_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "d.json").symlink_to(victim)
    record.write(str(tmp_path / "d.pid"), {"name": "d"})
    assert victim.read_text() == "keep"
    assert not (tmp_path / "d.json").is_symlink()
    assert record.read(str(tmp_path / "d.pid")) == {"name": "d"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "victim"]


def test_write_refuses_a_directory_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(RecordError, match="writable by other users"):
        record.write(str(shared / "x.pid"), {})
    assert not list(shared.iterdir())


def test_a_record_name_at_name_max_is_written(tmp_path: Path) -> None:
    base = "n" * (255 - len(".json"))  # NAME.json.<pid>.tmp would not fit
    record.write(str(tmp_path / f"{base}.pid"), {"name": "long"})
    assert record.read(str(tmp_path / f"{base}.pid")) == {"name": "long"}


def test_write_errors_name_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    too_long = str(tmp_path / ("n" * 260 + ".pid"))
    with pytest.raises(RecordError, match=r"\.json: cannot write: File name too long"):
        record.write(too_long, {})
    with pytest.raises(RecordError, match="directory .*/missing does not exist"):
        record.write(str(tmp_path / "missing" / "x.pid"), {})

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(record.os, "replace", full)  # inject the failure only
    with pytest.raises(RecordError) as info:
        record.write(str(tmp_path / "x.pid"), {})
    assert str(info.value) == f"start record {tmp_path / 'x.json'}: cannot write: No space left on device"
    assert not list(tmp_path.iterdir())  # the temporary file is gone too


def test_record_error_pickles() -> None:
    exc = pickle.loads(pickle.dumps(RecordError("/r.json", "why")))
    assert isinstance(exc, RecordError) and isinstance(exc, DaemonError)
    assert (exc.path, exc.reason, str(exc)) == ("/r.json", "why", "start record /r.json: why")


@root_only
def test_start_with_a_pidfile_in_a_shared_directory_runs_and_says_it_has_no_record(
    cli: Cli, public: Path
) -> None:
    sticky = public / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    code, out, err = cli("start", "--pidfile", str(sticky / "t.pid"), "--", cli.sleep, "60")
    assert code == 0, err
    assert out.startswith("started sleep (pid ")
    assert err == (
        f"daemonkit: sleep: start record {sticky / 't.json'}: directory {sticky} is writable by other users;"
        " a record there could be planted, not trusting it;"
        " 'daemonkit restart' will not know how it was started\n"
    )
    assert not (sticky / "t.json").exists()


@root_only
def test_forget_refuses_a_directory_others_could_have_planted(cli: Cli, public: Path) -> None:
    sticky = public / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    record = sticky / "evil.json"
    record.write_text("{}")
    code, _, err = cli("forget", "--pidfile", str(sticky / "evil.pid"))
    assert code == 1 and "remove its files by hand" in err
    assert record.exists()
