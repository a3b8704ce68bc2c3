#!/usr/bin/env python3
"""Draws the home-screen icons (public/icon-192.png, public/icon-512.png) from the same design
as public/favicon.svg: a blue rounded square with a white line chart. Standard library only;
run it again after changing the design."""
import math
import pathlib
import struct
import zlib

BLUE = (0x25, 0x63, 0xEB)
WHITE = (0xFF, 0xFF, 0xFF)
# The favicon's geometry, on a 32-unit square.
RADIUS = 6
LINE = [(4, 22), (10, 14), (16, 18), (22, 8), (28, 12)]
STROKE = 3


def distance_to_segment(px, py, a, b):
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def inside_rounded_square(x, y):
    cx = min(max(x, RADIUS), 32 - RADIUS)
    cy = min(max(y, RADIUS), 32 - RADIUS)
    return math.hypot(x - cx, y - cy) <= RADIUS


def png(size):
    rows = []
    unit = 32 / size
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            row.extend(sample(px, py, unit))
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def sample(px, py, unit):
    """A pixel smaller than a unit: 4x4 samples within it."""
    color, alpha = [0.0, 0.0, 0.0], 0
    for i in range(4):
        for j in range(4):
            x, y = (px + (i + 0.5) / 4) * unit, (py + (j + 0.5) / 4) * unit
            if not inside_rounded_square(x, y):
                continue
            alpha += 1
            on_line = min(distance_to_segment(x, y, a, b) for a, b in zip(LINE, LINE[1:])) <= STROKE / 2
            for k, c in enumerate(WHITE if on_line else BLUE):
                color[k] += c
    if alpha == 0:
        return (0, 0, 0, 0)
    return tuple(round(c / alpha) for c in color) + (round(255 * alpha / 16),)


if __name__ == "__main__":
    public = pathlib.Path(__file__).resolve().parent.parent / "public"
    for size in (192, 512):
        (public / f"icon-{size}.png").write_bytes(png(size))
        print(f"public/icon-{size}.png")
