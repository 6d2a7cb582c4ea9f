"""Atlassian Document Format (ADF), the body of a Jira REST API v3 comment: a validity check, a
walk over its nodes, and Jira's conversions between ADF (v3) and wiki markup (v2)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any


def is_valid_adf(doc: Any) -> bool:
    """Loose Atlassian Document Format check: a versioned doc of typed nodes, non-empty text
    nodes, and link marks carrying an href (what Jira rejects with "Comment body is not valid!")."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return False
    return isinstance(doc.get("content"), list) and all(_valid_node(n) for n in doc["content"])


def _valid_node(node: Any) -> bool:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        return False
    if node["type"] == "text" and not (isinstance(node.get("text"), str) and node["text"]):
        return False
    marks = node.get("marks", [])
    if not isinstance(marks, list):
        return False
    for mark in marks:
        if not isinstance(mark, dict) or not isinstance(mark.get("type"), str):
            return False
        if mark["type"] == "link" and not isinstance((mark.get("attrs") or {}).get("href"), str):
            return False
    content = node.get("content", [])
    return isinstance(content, list) and all(_valid_node(child) for child in content)


def iter_adf(node: Any) -> Iterator[dict[str, Any]]:
    """Depth-first walk over an ADF tree's nodes."""
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []) if isinstance(node.get("content"), list) else []:
            yield from iter_adf(child)


def adf_link(node: dict[str, Any]) -> str | None:
    """The URL a text node links to (link mark) or an inline/block card points at."""
    if node.get("type") in ("inlineCard", "blockCard"):
        url = (node.get("attrs") or {}).get("url")
        return url if isinstance(url, str) else None
    for mark in node.get("marks", []) or []:
        if isinstance(mark, dict) and mark.get("type") == "link":
            href = (mark.get("attrs") or {}).get("href")
            return href if isinstance(href, str) else None
    return None


def adf_to_wiki(doc: Any) -> str:
    """How Jira shows a v3 (ADF) comment through v2: wiki markup, links as [text|url]."""
    blocks: list[str] = []
    for block in doc.get("content", []) if isinstance(doc, dict) else []:
        parts: list[str] = []
        for node in iter_adf(block):
            url = adf_link(node)
            text = node.get("text") if node.get("type") == "text" else None
            if node.get("type") == "hardBreak":
                parts.append("\n")
            elif url and text:
                parts.append(f"[{text}|{url}]")
            elif url:
                parts.append(f"[{url}]")
            elif isinstance(text, str):
                parts.append(text)
        blocks.append("".join(parts))
    return "\n\n".join(blocks)


_WIKI_LINK = re.compile(r"\[(?:([^|\]]*)\|)?([a-z][a-z0-9+.-]*://[^\]\s]+)\]")


def wiki_to_adf(text: str) -> dict[str, Any]:
    """How Jira shows a v2 (wiki) comment through v3: paragraphs, [text|url] as link marks."""
    content: list[dict[str, Any]] = []
    for paragraph in (p for p in text.split("\n\n") if p.strip()):
        nodes: list[dict[str, Any]] = []
        position = 0
        for match in _WIKI_LINK.finditer(paragraph):
            if match.start() > position:
                nodes.append({"type": "text", "text": paragraph[position : match.start()]})
            label, url = match.group(1) or match.group(2), match.group(2)
            link = {"type": "link", "attrs": {"href": url}}
            nodes.append({"type": "text", "text": label, "marks": [link]})
            position = match.end()
        if position < len(paragraph):
            nodes.append({"type": "text", "text": paragraph[position:]})
        content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}
