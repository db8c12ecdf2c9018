"""`umlgui terminal -- CMD` (umlgui.terminal.app.main) end to end on a local pty."""

from umlgui.terminal.app import main


def test_app_runs_command_and_returns_its_status(qapp):
    assert main(["--", "sh", "-c", "printf 'hello\\n'; exit 5"]) == 5


def test_app_reports_a_missing_command(qapp, capsys):
    assert main(["no-such-command-xyz"]) == 127
    assert "command not found" in capsys.readouterr().err
