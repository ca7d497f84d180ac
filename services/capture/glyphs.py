"""A 5x7 bitmap font for the few words the "camera offline" and "stream paused" frames
show, so drawing them needs no font file or imaging library."""

from __future__ import annotations

import numpy as np

_GLYPHS = {
    "A": ".###.#...##...#######...##...##...#",
    "C": ".#####....#....#....#....#.....####",
    "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....",
    "G": ".#####....#....#..###...##...#.####",
    "H": "#...##...##...#######...##...##...#",
    "I": "#####..#....#....#....#....#..#####",
    "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##...##...##...##...#",
    "N": "#...###..##.#.##..###...##...##...#",
    "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....",
    "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.",
    "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.",
    " ": "." * 35,
}


def text_mask(text: str, scale: int) -> np.ndarray:
    """A boolean mask of ``text`` in the 5x7 font, each dot ``scale`` pixels square."""
    rows = []
    for y in range(7):
        row: list[bool] = []
        for ch in text.upper():
            bits = _GLYPHS.get(ch, _GLYPHS[" "]).ljust(35, ".")[:35]
            row.extend(c == "#" for c in bits[y * 5 : y * 5 + 5])
            row.append(False)
        rows.append(row)
    mask = np.array(rows, dtype=bool)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)
