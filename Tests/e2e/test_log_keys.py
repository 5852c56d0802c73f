"""One set of log metadata keys (issue 11): every key kine logs with follows one naming rule
(`error` for the failure, else `kine.*`, `grpc.*` or `tls.*` with camelCase parts) and is listed
in docs/design.md's table, so an operator's log queries can rely on it. Read from the sources."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULE = re.compile(r"^(error|(kine|grpc|tls)(\.[a-z][A-Za-z0-9]*)+)$")


def _bracketed(text: str, start: int) -> str:
    """The text of the [...] literal opening at `start`."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "[":
            depth += 1
        elif text[i] == "]":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return text[start:]


def logged_keys() -> dict[str, list[str]]:
    """{key: [files]} for every metadata key in Sources."""
    keys: dict[str, list[str]] = {}
    for path in sorted((ROOT / "Sources").rglob("*.swift")):
        text = path.read_text()
        found: set[str] = set()
        for m in re.finditer(r"(?:metadata: |Logger\.Metadata = )\[", text):
            literal = _bracketed(text, m.end() - 1)
            found.update(re.findall(r'"([^"\\]+)"\s*:', literal))
        found.update(re.findall(r'metadataKey: "([^"]+)"', text))
        found.update(re.findall(r'\b\w+\["([a-z][^"]*\.[^"]+)"\] = ', text))
        if "MetadataKey: String" in text:
            found.update(re.findall(r'case \w+ = "([^"]+)"', text))
        for key in found:
            keys.setdefault(key, []).append(str(path.relative_to(ROOT)))
    return keys


def documented_keys() -> set[str]:
    text = (ROOT / "docs" / "design.md").read_text()
    section = text[text.index("### Log fields"):]
    section = section[:section.find("\n## ")] if "\n## " in section else section
    return set(re.findall(r"^\| `([^`]+)` \|", section, re.M))


def test_every_key_follows_the_rule():
    keys = logged_keys()
    assert len(keys) > 20, f"the scan found too few keys to be working: {sorted(keys)}"
    wrong = {k: v for k, v in keys.items() if not RULE.match(k)}
    assert not wrong, f"log keys outside the rule: {wrong}"


def test_every_key_is_documented_and_every_documented_key_is_used():
    keys = set(logged_keys())
    documented = documented_keys()
    assert keys - documented == set(), f"add these to docs/design.md's log fields: {sorted(keys - documented)}"
    assert documented - keys == set(), f"documented but never logged: {sorted(documented - keys)}"
