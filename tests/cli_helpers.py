"""Shared by the CLI tests: a bad input must end in one sentence and exit 2."""

from mobileseg.cli import main


def one_sentence(capsys, argv) -> str:
    """Run ``mobileseg argv``; assert exit 2 and a single ``mobileseg: error:`` line; return that line."""
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("mobileseg: error: ") and "\n" not in err and "Traceback" not in err, err
    return err
