"""Draw a simulated board as a PNG for docs/simulation.md: `python scripts/board_picture.py OUT`.

Two players seed a 64 x 64 dish (bacteria, fungi, phages), feed it and drop antibiotic A on one
corner; after 60 ticks each cell is drawn 6 x 6 pixels: nutrients as a green wash, antibiotic A
as red, organisms in their owner's colour (fungi lighter, phages dark). Plain zlib PNG, no
imaging library.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from arena.simulation.board import BACTERIA, FUNGI, PHAGE, Board
from arena.simulation.rules import DueAction, Rules, step

SIDE, TICKS, PIXELS = 64, 60, 6
OWNER_COLOURS = np.array([[40, 110, 220], [235, 150, 30]], np.float64)  # Ada blue, Bob orange


def _opening() -> list[DueAction]:
    rng = np.random.default_rng(2026)
    actions = []
    for index in range(160):
        kind = ("BACTERIA", "BACTERIA", "FUNGI", "PHAGE")[index % 4]
        x, y = (int(v) for v in rng.integers(0, SIDE, 2))
        player = ("ada", "bob")[index % 2]
        payload = {"kind": kind, "position": {"x": x, "y": y}}
        actions.append(DueAction(f"spawn-{index}", player, "SPAWN_ORGANISM", payload))
    everywhere = {"x": 0, "y": 0, "width": SIDE, "height": SIDE}
    corner = {"x": 0, "y": 0, "width": 20, "height": 20}
    actions.append(DueAction("feed", "ada", "ADD_NUTRIENTS", {"area": everywhere, "amount": 4.0}))
    dose = {"area": corner, "kind": "A", "concentration": 3.0}
    actions.append(DueAction("dose", "bob", "DROP_ANTIBIOTIC", dose))
    return actions


def render(board: Board) -> np.ndarray:
    nutrients = np.clip(board["nutrients"] / 4000.0, 0, 1)[..., None]
    antibiotic = np.clip(board["antibiotic"][0] / 3000.0, 0, 1)[..., None]
    image = 250 - nutrients * np.array([90, 30, 90]) - antibiotic * np.array([0, 120, 120])
    owner, kind = board["owner"], board["kind"]
    for index in range(len(board.owners)):
        colour = OWNER_COLOURS[index % len(OWNER_COLOURS)]
        for code, shade in ((BACTERIA, 1.0), (FUNGI, 1.35), (PHAGE, 0.45)):
            cells = (owner == index) & (kind == code)
            image[cells] = np.clip(colour * shade, 0, 255)
    return np.kron(image, np.ones((PIXELS, PIXELS, 1))).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def main(out: str) -> None:
    rules = Rules(seed=7, diffusion_rate=0.1, mutation_rate=0.05, max_organisms=4000)
    board = Board.empty(SIDE, SIDE, 30.0)
    for tick in range(TICKS):
        result = step(board, _opening() if tick == 0 else [], rules)
        board = result.board
    Path(out).write_bytes(png(render(board)))
    print(f"tick {board.tick}: {result.stats}; board hash {board.hash()[:16]}… → {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/board.png")
