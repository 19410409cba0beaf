import argparse

import yaml

from governance import cli
from governance.policy import DEFAULT_PATH
from tapestry import lakehouse


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tapestry")
    commands = parser.add_subparsers(dest="command", required=True)
    cli.register(commands)
    args = parser.parse_args(argv)
    return args.func(args)


def test_policy_check_prints_the_matrix(capsys):
    assert run(["policy", "check"]) == 0
    out = capsys.readouterr().out
    assert "valid. 6 agencies" in out
    assert "commissioner" in out and "identifiable (children_act_1989_s47)" in out
    assert "nhs: 3 years" in out


def test_policy_check_of_a_bad_file_fails_with_the_path(tmp_path, capsys):
    document = yaml.safe_load(DEFAULT_PATH.read_text())
    document["roles"]["commissioner"]["access"]["nhs"] = "identifiable"
    bad = tmp_path / "policy.yaml"
    bad.write_text(yaml.safe_dump(document))
    assert run(["policy", "check", str(bad)]) == 1
    assert "roles.commissioner.access.nhs: identifiable access needs a legal gateway" in capsys.readouterr().err


def test_keys_and_audit_commands(tapestry_env, capsys, monkeypatch):
    monkeypatch.delenv("TAPESTRY_MASTER_KEY", raising=False)
    monkeypatch.delenv("TAPESTRY_MASTER_KEY_NEW", raising=False)
    assert run(["keys", "status"]) == 0
    out = capsys.readouterr().out
    master = next(line.split()[2] for line in out.splitlines() if line.startswith("master key:"))
    assert master.startswith("mk-")

    assert run(["keys", "rotate", "--actor", "tester"]) == 0
    out = capsys.readouterr().out
    assert f"{master} -> mk-" in out and "destroyed" in out
    assert run(["keys", "status"]) == 0
    assert f"retired master keys: {master}" in capsys.readouterr().out

    assert run(["audit", "verify"]) == 0  # the rotation was audited
    assert "intact: 1 entries" in capsys.readouterr().out

    with lakehouse.connect(tapestry_env) as con:
        con.execute("UPDATE audit.access_log SET actor = 'someone else' WHERE entry_id = 1")
    assert run(["audit", "verify"]) == 1
    assert "BROKEN at entry 1" in capsys.readouterr().out
