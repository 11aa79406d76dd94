"""The real ``snnas`` command, run as a subprocess."""

import csv
import io
import json
import subprocess
import sys

from snnas.nas.models.zoo import ZOO


def snnas(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "snnas", *args], capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    from snnas.nas import __version__

    assert snnas("--version").stdout.strip() == f"snnas {__version__}"
    out = snnas("--help")
    assert out.returncode == 0 and "zoo" in out.stdout


def test_no_help_text_is_lost_to_rich_markup():
    """Help is rendered with Rich, which drops what reads as a markup tag: "[" then a lowercase letter,
    "#", "/" or "@" ("[default: x]" vanished from several options)."""
    import re

    import typer.main

    from snnas.cli.main import app

    def commands(command, path=()):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, (*path, name))

    texts = [(path, p.name, p.help) for path, command in commands(typer.main.get_command(app))
             for p in command.params if getattr(p, "param_type_name", "") == "option" and p.help]
    assert len(texts) > 50
    eaten = [(path, name, text) for path, name, text in texts if re.search(r"(?<!\\)\[[a-z#/@]", text)]
    assert not eaten


def test_zoo_json_lists_every_variant_with_ours_beside_the_published_count():
    out = snnas("zoo", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == list(ZOO)
    for row in rows:
        assert {"name", "params_m", "published_params_m", "convention"} <= set(row)
        assert row["convention"] in ("all", "no_bn")
        if row["published_params_m"] is not None:
            assert abs(row["params_m"] - row["published_params_m"]) <= 0.01, row["name"]
    ti = next(r for r in rows if r["name"] == "spikingresformer-ti")
    assert ti["params_m"] == ti["params_m_no_bn"] < ti["params_m_all"]


def test_zoo_table_and_csv_name_every_variant():
    table = snnas("zoo")
    assert table.returncode == 0
    assert all(name in table.stdout for name in ZOO)
    rows = list(csv.DictReader(io.StringIO(snnas("zoo", "--format", "csv").stdout)))
    assert [r["name"] for r in rows] == list(ZOO)


def test_zoo_show_prints_one_entry_whole_and_refuses_what_is_not_one():
    out = snnas("zoo", "show", "sdt-8-768")
    assert out.returncode == 0, out.stderr
    for text in ("Spike-driven Transformer", "official code", "66.34 M published", "ImageNet top-1 % 77.07",
                 "energy mJ 6.09", "288", "trained at 224 px", "stage 0:      8 blocks, width 768, 8 heads, sdsa",
                 "img_size: 288", "head_neuron: true"):
        assert text in out.stdout, text
    shown = json.loads(snnas("zoo", "show", "spikformer-cifar10dvs-2-256", "-f", "json").stdout)
    assert shown["arch"]["attn_scale"] == 0.25 and shown["published"] == {"cifar10dvs_top1": 80.9} and shown["cited"]
    for args, message in ((("show", "spikformer-99-1"), "not a zoo model"), (("show",), "snnas zoo show NAME"),
                          (("list",), "snnas zoo show NAME")):
        bad = snnas("zoo", *args)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, args


def test_bad_option_value_is_one_clear_error_without_traceback():
    out = snnas("zoo", "--format", "xml")
    assert out.returncode == 2
    assert "xml" in out.stderr and "Traceback" not in out.stderr


def test_help_paragraphs_wrap_with_the_terminal_not_the_docstring():
    """A docstring's own line breaks would show as hard breaks in --help: each paragraph is one line."""
    import os

    for command, words in ((["zoo"], "'all' includes BatchNorm affine parameters, 'no_bn' excludes them"),
                           (["arch", "front"], "best objective first (one per line, for a shell loop")):
        out = subprocess.run([sys.executable, "-m", "snnas", *command, "--help"], capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": "250"}, timeout=60)
        assert out.returncode == 0 and words in out.stdout, out.stdout
