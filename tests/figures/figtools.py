"""Readers for figure files: PNG pixel size, SVG groups by gid, marker counts."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

SVG = "{http://www.w3.org/2000/svg}"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def svg_groups(path: Path, gid: str) -> list[ET.Element]:
    """Every element of an SVG whose id is ``gid`` (matplotlib writes an artist's gid as the id of
    its group; artists sharing a gid give several groups)."""
    return [el for el in ET.parse(path).getroot().iter() if el.get("id") == gid]


def svg_ids(path: Path) -> set[str]:
    """All ids in an SVG."""
    return {el.get("id") for el in ET.parse(path).getroot().iter() if el.get("id") is not None}


def markers(groups: list[ET.Element]) -> int:
    """Markers drawn by scatter/marker groups: <use> references, or one <path> each when the
    backend inlined them."""
    total = 0
    for group in groups:
        uses = sum(1 for _ in group.iter(f"{SVG}use"))
        total += uses if uses else sum(1 for _ in group.iter(f"{SVG}path"))
    return total
