"""README's table of formats x runtimes x precisions x devices is generated from mobileseg/formats.py: it cannot
drift from the table the code reads."""

from pathlib import Path

from mobileseg import formats

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- formats-table: generated, do not edit -->\n", "\n<!-- /formats-table -->"


def test_readme_copy_matches_formats_py():
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "README.md lost its formats-table markers"
    copy = text.split(START, 1)[1].split(END, 1)[0]
    assert copy == formats.support_markdown(), (
        "README's formats table differs from mobileseg/formats.py: paste the output of "
        "python -c 'from mobileseg.formats import support_markdown; print(support_markdown())' between its markers"
    )


def test_every_runtime_has_a_row_with_its_format_and_precisions():
    rows = formats.support_rows()
    assert [r["runtime"].strip("`") for r in rows] == list(formats.RUNTIMES)
    for r in rows:
        rt = formats.RUNTIMES[r["runtime"].strip("`")]
        assert r["format"] == rt.format and r["precisions"] == ", ".join(formats.FORMATS[rt.format].precisions)


def test_phone_column_agrees_with_the_native_harness():
    """The "stock Android" column says "native harness" exactly for the runtimes the native driver accepts."""
    from mobileseg.device.native import NativeHarnessDriver

    drv = NativeHarnessDriver()
    for name, rt in formats.RUNTIMES.items():
        why = drv.supports(name, {"abi": "arm64-v8a"}) or ""
        assert ("runs ncnn only" not in why) == any("native harness" in t for t in rt.phone_tools), name
