"""Rendering the document model as Markdown and as a self-contained HTML page (plots inlined)."""

from __future__ import annotations

import base64
import html

from reasoningrec.report.blocks import Block


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(block.kind[1]) + " " + block.text, ""]
        elif block.kind == "p":
            lines += [block.text, ""]
        elif block.kind == "table":
            lines.append("| " + " | ".join(map(_md_escape, block.header)) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(map(_md_escape, row)) + " |" for row in block.rows]
            lines.append("")
        elif block.kind == "image":
            lines += [f"![{block.text}]({block.file})", ""]
    return "\n".join(lines)


HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ReasoningRec results</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
code {{ font-size: 0.8rem; }}
</style></head><body>
{body}
</body></html>
"""


def _inline_html(text: str) -> str:
    """Escape, then turn `code` spans and <br> back into markup."""
    parts = html.escape(text).replace("&lt;br&gt;", "<br>").split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(blocks: list[Block]) -> str:
    body: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            body.append(f"<{block.kind}>{_inline_html(block.text)}</{block.kind}>")
        elif block.kind == "p":
            body.append(f"<p>{_inline_html(block.text)}</p>")
        elif block.kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.kind == "image":
            data = base64.b64encode(block.png).decode("ascii")
            body.append(f'<p><img alt="{html.escape(block.text)}" src="data:image/png;base64,{data}"></p>')
    return HTML_PAGE.format(body="\n".join(body))
