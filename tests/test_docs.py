"""The documentation matches the code and the repository.

- docs/config.md lists every field of the config dataclasses (the shared sections, each registered task's data and
  loss, each registered model's options, each loss term's and callback's options) with its default, and no key or
  section that does not exist;
- every relative link in README.md, docs/, models/README.md and datasets/README.md resolves to a file of the
  repository (and to a heading, when it names one), and nothing points outside the repository;
- docs/index.md links every page of docs/;
- README.md stays short and carries the two set-up commands verbatim; its test command is the one CI runs.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from equilib.train import CALLBACKS, LOSS_TERMS, MODELS, TASKS, TrainConfig
from equilib.train._config import GENERIC

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIG_DOC = DOCS / "config.md"
README_MAX_BYTES = 8192

VENV = "python3 -m venv .venv && . .venv/bin/activate && "
MAIN_JOB_COMMAND = VENV + "pip install torch==2.13.0 && pip install -e . && python scripts/main_job.py"
TEST_COMMAND = VENV + 'pip install -q torch==2.13.0 && pip install -q -e ".[dev]" && python -m pytest -q'
CI_MARKER = "# The README's test command, verbatim:"

HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")
ROW = re.compile(r"^\| `([A-Za-z_.][A-Za-z0-9_.]*)` \|([^|]*)\|")
CODE = re.compile(r"`([^`]*)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _builtin(registry) -> dict:
    """The registry's entries defined by equilib itself (tests may register their own)."""
    return {name: obj for name, obj in vars(registry)["_items"].items() if obj.__module__.startswith("equilib.")}


def _fields(cls, skip: tuple[str, ...] = ()) -> dict:
    """Field name -> default (None when it has none) of a dataclass."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = None
    return out


def expected_sections() -> dict[str, dict]:
    """Heading of docs/config.md -> {key: default} it must document."""
    sections = {"Top-level keys": _fields(TrainConfig)}
    for name, cls in GENERIC.items():
        sections[f"`{name}`"] = _fields(cls)
    for name, task in _builtin(TASKS).items():
        sections[f"`data` (`{name}`)"] = _fields(task.Data)
        sections[f"`loss` (`{name}`)"] = _fields(task.Loss)
    sections["`model`"] = {"name": None}
    for name, model in _builtin(MODELS).items():
        sections[f"`model` (`{name}`)"] = _fields(model.Options, skip=("name",))
    for name, term in _builtin(LOSS_TERMS).items():
        sections[f"`loss.terms` (`{name}`)"] = _fields(term.Options)
    for name, callback in _builtin(CALLBACKS).items():
        sections[f"`callbacks` (`{name}`)"] = _fields(callback.Options)
    return sections


def _prose(path: Path) -> list[str]:
    """The lines of a Markdown file outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def documented_sections() -> dict[str, dict[str, str]]:
    """Level-3 heading of docs/config.md -> {key: default cell} of the table under it."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in _prose(CONFIG_DOC):
        heading = HEADING.match(line)
        if heading:
            current = heading.group(2) if len(heading.group(1)) == 3 else None
            if current is not None:
                assert current not in sections, f"docs/config.md: heading {current!r} appears twice"
                sections[current] = {}
            continue
        row = ROW.match(line)
        if row:
            assert current is not None, f"docs/config.md: table row outside a '###' section: {line}"
            key, cell = row.group(1), row.group(2).strip()
            assert key not in sections[current], f"docs/config.md, {current}: key {key} listed twice"
            sections[current][key] = cell
    return sections


def _same(documented, default) -> bool:
    if isinstance(default, bool) or isinstance(documented, bool):
        return documented is default
    if isinstance(default, float):
        return isinstance(documented, float) and documented == default
    return type(documented) is type(default) and documented == default


def test_config_doc_has_every_section_and_no_other():
    expected, documented = expected_sections(), documented_sections()
    missing = sorted(set(expected) - set(documented))
    extra = sorted(set(documented) - set(expected))
    assert not missing, f"docs/config.md has no section for {missing}"
    assert not extra, f"docs/config.md documents sections that do not exist: {extra}"


@pytest.mark.parametrize("section", sorted(expected_sections()))
def test_config_doc_lists_every_key_with_its_default(section):
    fields = expected_sections()[section]
    rows = documented_sections().get(section, {})
    missing = sorted(set(fields) - set(rows))
    extra = sorted(set(rows) - set(fields))
    assert not missing, f"docs/config.md, {section}: keys not documented: {missing}"
    assert not extra, f"docs/config.md, {section}: keys that do not exist: {extra}"
    for key, default in fields.items():
        cell = rows[key]
        if section == "`model`":  # model.name defaults to the task's model, not to the dataclass's ""
            for task in _builtin(TASKS).values():
                assert f"`{task.default_model}`" in cell, f"docs/config.md: model.name: {task.default_model} missing"
            continue
        if dataclasses.is_dataclass(default) or (section == "Top-level keys" and key in ("data", "model", "loss")):
            continue  # a whole section, documented under its own heading
        code = CODE.search(cell)
        assert code, f"docs/config.md, {section}: {key}: no `default` in {cell!r}"
        documented = yaml.safe_load(code.group(1))
        assert _same(documented, default), (
            f"docs/config.md, {section}: {key}: documented default {code.group(1)!r}, the code's is {default!r}")


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md")), ROOT / "models" / "README.md", ROOT / "datasets" / "README.md"]


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of a Markdown file."""
    headings = [m.group(2) for m in map(HEADING.match, _prose(path)) if m]
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_inside_the_repository(path):
    text = path.read_text()
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        if target.startswith("#"):
            assert target[1:] in _anchors(path), f"{path.name}: link {target}: no such heading"
            continue
        name, _, anchor = target.partition("#")
        file = (path.parent / name).resolve()
        assert file.is_relative_to(ROOT), f"{path.name}: link {target} leaves the repository"
        assert file.exists(), f"{path.name}: link {target} points to nothing"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{path.name}: link {target}: no heading #{anchor} in {name}"
    for outside in ("../shared", "/work/"):
        assert outside not in text, f"{path.name} refers to {outside}, outside the repository"


def test_index_lists_every_page():
    index = (DOCS / "index.md").read_text()
    linked = {(DOCS / target.split("#", 1)[0]).resolve() for target in LINK.findall(index)}
    pages = {p.resolve() for p in DOCS.rglob("*.md") if p.name != "index.md"}
    assert pages, f"no pages in {DOCS}"
    assert not pages - linked, f"docs/index.md does not link {sorted(str(p.relative_to(ROOT)) for p in pages - linked)}"


def test_readme_is_short():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, more than {README_MAX_BYTES}"


def _ci_test_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return lines[lines.index(CI_MARKER) + 1].strip()


def test_readme_setup_commands_are_verbatim_and_ci_runs_the_test_command():
    lines = [line.strip() for line in README.read_text().splitlines()]
    assert MAIN_JOB_COMMAND in lines, "README.md: the main job's set-up command is not there verbatim"
    assert TEST_COMMAND in lines, "README.md: the test command is not there verbatim"
    assert TEST_COMMAND == VENV + _ci_test_command(), ".ci/run does not run the README's test command"
