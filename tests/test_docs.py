"""The documentation holds together: docs/README.md maps every page, every link and every
`docs/<page>.md#<heading>` cited by the code leads to a heading that exists, and the README's
digits table is the one docs/results.md measured.

Anchors are GitHub's: the heading in lower case, characters other than letters, digits, spaces,
hyphens and underscores dropped, spaces turned into hyphens, and a repeated heading numbered -1, -2, ….
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CODE_FOLDERS = ["efficientnet", "teacher", "student", "pseudolabel", "pipelines", "robustness", "benchmarks", "tests"]


def anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # `# comments` in code are no headings
    anchors, seen = set(), {}
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        base = anchor(heading)
        anchors.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return anchors


def links_of(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in target]


def test_anchor_follows_github():
    assert anchor("Bad input → behaviour") == "bad-input--behaviour"
    assert anchor("Outputs and `stats.json`") == "outputs-and-statsjson"
    assert anchor("tf.data service") == "tfdata-service"
    assert anchor("The standard protocol (150 labels)") == "the-standard-protocol-150-labels"


def test_docs_map_names_every_page():
    linked = set(links_of(ROOT / "docs" / "README.md"))
    pages = {page.name for page in (ROOT / "docs").glob("*.md")} - {"README.md"}
    assert pages - linked == set()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_links_lead_to_a_file_and_heading(page):
    for target in links_of(page):
        path, _, fragment = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        assert destination.exists(), f"{page.name}: {target}"
        if fragment:
            assert fragment in anchors_of(destination), f"{page.name}: {target}"


def test_code_cites_existing_headings():
    cited = set()
    for folder in CODE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            cited |= {(path, *m) for m in re.findall(r"docs/([a-z_]+\.md)#([a-z0-9_-]+)", path.read_text())}
    for path in [*ROOT.glob("configs/*.json"), *ROOT.glob("scripts/*.sh"), *ROOT.glob("*.sh"), ROOT / "Dockerfile"]:
        cited |= {(path, *m) for m in re.findall(r"docs/([a-z_]+\.md)#([a-z0-9_-]+)", path.read_text())}
    assert cited
    for path, page, fragment in sorted(cited):
        assert fragment in anchors_of(ROOT / "docs" / page), f"{path.relative_to(ROOT)}: docs/{page}#{fragment}"


def first_table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| round |"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


def test_readme_digits_table_is_the_measured_one():
    """The README shows docs/results.md's standard table; the numbers live there, with their date."""
    readme = (ROOT / "README.md").read_text().split("\n## Results on digits\n", 1)[1]
    results = (ROOT / "docs" / "results.md").read_text().split("\n## The standard protocol (150 labels)\n", 1)[1]
    assert first_table(readme) == first_table(results)


def run_iteration_commands() -> list[list[str]]:
    """Every `./run_iteration.sh …` command of the README and docs/, as its arguments."""
    commands = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                words = line.split("#", 1)[0].split()
                if words[:1] == ["./run_iteration.sh"]:
                    commands.append(words[1:])
    return commands


def test_every_run_iteration_command_names_a_config_whose_every_step_validates():
    """The quick start's commands run as written: flags the script takes, and a config every step
    of whose rounds resolves and validates (what the script checks before it trains)."""
    from pipelines.iteration import check_steps, load_config

    commands = run_iteration_commands()
    assert ["--round", "1", "--config", "configs/digits_quick.json", "--work_dir", "runs/digits-quick"] in commands
    script = (ROOT / "run_iteration.sh").read_text()
    for arguments in commands:
        flags = dict(zip(arguments[::2], arguments[1::2], strict=False))
        assert all(f"{flag}|" in script or f"|{flag})" in script for flag in flags), arguments
        config_path = flags.get("--config", "configs/digits.json")
        if not (ROOT / config_path).exists():
            continue  # a copy the user makes first (imagenet.json from configs/imagenet_tpu.json)
        data = {role: flags.get(f"--{role}") for role in ("labeled", "unlabeled", "validation", "test")}
        config = load_config(str(ROOT / config_path), data=data)
        check_steps(config, int(flags["--round"]), False, config_path)
