#!/usr/bin/env python3
"""Render captured terminal text (with ANSI SGR colour codes) to a PNG.

Used by scripts/screenshot.sh for the course screenshots in docs/screenshots/.
Each --pane is one terminal: a title and a file holding what
`tmux capture-pane -e -p` printed (or any text with SGR escape sequences).
The panes are drawn side by side, each under a title bar, on a dark background,
in DejaVu Sans Mono at native size (no scaling, so the text stays sharp).

    render_terminal.py --out shot.png \\
        --pane "alice's terminal" alice.txt \\
        --pane "bob's terminal" bob.txt --cursor 1 7,23

Supported SGR codes: 0 reset, 1 bold, 2 dim, 3 italic (drawn upright),
4 underline, 7 reverse, 8 hidden, 9 strike, 21/22-29 resets, 30-37 / 90-97 / 38;5;N /
38;2;R;G;B / 39 foreground, 40-47 / 100-107 / 48;5;N / 48;2;R;G;B / 49 background.
Other escape sequences (cursor movement, OSC titles, ...) are skipped. Wide
(East Asian) characters take two cells, combining marks none.
"""

import argparse
import os
import sys
import unicodedata

try:
    from PIL import Image, ImageDraw, ImageFont
except ImportError:  # pragma: no cover - the calling script installs Pillow
    sys.exit("render_terminal.py: Pillow is missing (python3 -m pip install pillow)")

FONT_DIRS = [
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/dejavu",
    "/usr/local/share/fonts",
    "/Library/Fonts",
]
REGULAR = "DejaVuSansMono.ttf"
BOLD = "DejaVuSansMono-Bold.ttf"
# Tried, in order, for characters DejaVu Sans Mono has no glyph for (CJK, emoji...).
FALLBACKS = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansMono-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/unifont/unifont.ttf",
]

# Theme: a dark terminal with soft colours (close to the "One Dark" palette).
BG = (30, 33, 39)
FG = (220, 223, 228)
WINDOW_BG = (16, 17, 20)
TITLE_BG = (52, 56, 64)
TITLE_FG = (230, 232, 236)
SEPARATOR = (92, 99, 112)
CURSOR = (200, 204, 212)
ANSI16 = [
    (40, 44, 52), (224, 108, 117), (152, 195, 121), (229, 192, 123),
    (97, 175, 239), (198, 120, 221), (86, 182, 194), (220, 223, 228),
    (110, 118, 129), (240, 128, 136), (172, 218, 140), (240, 210, 140),
    (120, 192, 255), (218, 140, 240), (106, 204, 216), (255, 255, 255),
]


def palette256(n):
    """xterm's 256-colour palette."""
    if n < 16:
        return ANSI16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    level = 8 + 10 * (n - 232)
    return (level, level, level)


def find_font(name):
    for d in FONT_DIRS:
        path = os.path.join(d, name)
        if os.path.exists(path):
            return path
    sys.exit(f"render_terminal.py: font {name} not found (install fonts-dejavu-core)")


class Style:
    __slots__ = ("fg", "bg", "bold", "dim", "underline", "reverse", "hidden", "strike")

    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None  # None = default; else an (r, g, b) or an int 0-15
        self.bg = None
        self.bold = self.dim = self.underline = False
        self.reverse = self.hidden = self.strike = False

    def copy(self):
        s = Style.__new__(Style)
        for k in Style.__slots__:
            setattr(s, k, getattr(self, k))
        return s

    def apply(self, params):
        codes = [int(p) if p.isdigit() else 0 for p in params.replace(":", ";").split(";")]
        if not codes:
            codes = [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 4:
                self.underline = True
            elif c == 7:
                self.reverse = True
            elif c == 8:
                self.hidden = True
            elif c == 9:
                self.strike = True
            elif c in (21, 22):
                self.bold = self.dim = False
            elif c == 24:
                self.underline = False
            elif c == 27:
                self.reverse = False
            elif c == 28:
                self.hidden = False
            elif c == 29:
                self.strike = False
            elif 30 <= c <= 37:
                self.fg = c - 30
            elif 90 <= c <= 97:
                self.fg = c - 90 + 8
            elif c == 39:
                self.fg = None
            elif 40 <= c <= 47:
                self.bg = c - 40
            elif 100 <= c <= 107:
                self.bg = c - 100 + 8
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                colour = None
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    colour = palette256(codes[i + 2] % 256)
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    colour = tuple(max(0, min(255, v)) for v in codes[i + 2:i + 5])
                    i += 4
                if c == 38:
                    self.fg = colour
                else:
                    self.bg = colour
            i += 1

    def colours(self):
        fg = self.fg
        if isinstance(fg, int):
            fg = ANSI16[fg]
        bg = self.bg
        if isinstance(bg, int):
            bg = ANSI16[bg]
        fg = fg or FG
        if self.reverse:
            fg, bg = (bg or BG), fg
        if self.dim:
            base = bg or BG
            fg = tuple((a + b) // 2 for a, b in zip(fg, base))
        if self.hidden:
            fg = bg or BG
        return fg, bg


def char_width(ch):
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 2
    return 1


def parse(text):
    """Turns captured text into rows of cells: (char, width, Style)."""
    rows = []
    row = []
    style = Style()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\x1b":
            if i + 1 < n and text[i + 1] == "[":
                j = i + 2
                while j < n and not ("\x40" <= text[j] <= "\x7e"):
                    j += 1
                if j < n and text[j] == "m":
                    style = style.copy()  # cells drawn so far keep their style
                    style.apply(text[i + 2:j])
                i = j + 1
            elif i + 1 < n and text[i + 1] == "]":  # OSC ... BEL or ST
                j = i + 2
                while j < n and text[j] != "\x07" and text[j:j + 2] != "\x1b\\":
                    j += 1
                i = j + (1 if j < n and text[j] == "\x07" else 2)
            else:
                i += 2
            continue
        i += 1
        if ch == "\n":
            rows.append(row)
            row = []
        elif ch == "\t":
            for _ in range(8 - sum(c[1] for c in row) % 8):
                row.append([" ", 1, style])
        elif ch == "\r" or (ord(ch) < 32) or ch == "\x7f":
            continue
        else:
            w = char_width(ch)
            if w == 0 and row:
                row[-1][0] += ch  # a combining mark joins the character before it
            elif w > 0:
                row.append([ch, w, style])
    if row:
        rows.append(row)
    return rows


class Fonts:
    def __init__(self, size):
        self.regular = ImageFont.truetype(find_font(REGULAR), size)
        self.bold = ImageFont.truetype(find_font(BOLD), size)
        self.fallbacks = [ImageFont.truetype(p, size) for p in FALLBACKS if os.path.exists(p)]
        self.cell_w = round(self.regular.getlength("M"))
        ascent, descent = self.regular.getmetrics()
        self.ascent = ascent
        self.cell_h = round((ascent + descent) * 1.12)
        self._notdef = {}
        self._cache = {}

    def _sig(self, font, ch):
        """The glyph's pixels, to tell a real glyph from the font's "missing" box."""
        im = Image.new("L", (self.cell_w * 3, self.cell_h * 2))
        ImageDraw.Draw(im).text((0, 0), ch, font=font, fill=255)
        return im.tobytes()

    def _has(self, font, ch):
        if font not in self._notdef:
            self._notdef[font] = self._sig(font, "\U0010fffd")
        return self._sig(font, ch) != self._notdef[font]

    def for_char(self, ch, bold):
        key = (ch, bold)
        if key not in self._cache:
            main = self.bold if bold else self.regular
            font = main
            if ch.strip() and not self._has(main, ch[0]):
                for fb in self.fallbacks:
                    if self._has(fb, ch[0]):
                        font = fb
                        break
            self._cache[key] = font
        return self._cache[key]


def draw_pane(draw, fonts, rows, x0, y0, cols, nrows, cursor):
    cw, chh = fonts.cell_w, fonts.cell_h
    pad = (chh - fonts.ascent - fonts.regular.getmetrics()[1]) // 2
    for r, row in enumerate(rows[:nrows]):
        col = 0
        y = y0 + r * chh
        for text, w, style in row:
            if col + w > cols:
                break
            x = x0 + col * cw
            fg, bg = style.colours()
            if bg is not None:
                draw.rectangle([x, y, x + w * cw - 1, y + chh - 1], fill=bg)
            if text != " ":
                font = fonts.for_char(text, style.bold)
                draw.text((x, y + pad), text, font=font, fill=fg)
            if style.underline:
                draw.line([x, y + chh - 2, x + w * cw - 1, y + chh - 2], fill=fg)
            if style.strike:
                draw.line([x, y + chh // 2, x + w * cw - 1, y + chh // 2], fill=fg)
            col += w
    if cursor is not None:
        cx, cy = cursor
        if 0 <= cy < nrows and 0 <= cx < cols:
            x, y = x0 + cx * cw, y0 + cy * chh
            draw.rectangle([x, y, x + cw - 1, y + chh - 1], fill=CURSOR)
            row = rows[cy] if cy < len(rows) else []
            col = 0
            for text, w, style in row:
                if col == cx and text != " ":
                    draw.text((x, y + pad), text, font=fonts.for_char(text, style.bold), fill=BG)
                col += w


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--pane", nargs=2, action="append", metavar=("TITLE", "FILE"),
                    required=True, help="a terminal: its title and its captured text")
    ap.add_argument("--cursor", nargs=2, action="append", default=[], metavar=("PANE", "X,Y"),
                    help="draw a block cursor in pane number PANE (0-based) at column X, row Y")
    ap.add_argument("--cols", type=int, help="columns per pane (default: widest line)")
    ap.add_argument("--rows", type=int, help="rows per pane (default: longest capture)")
    ap.add_argument("--font-size", type=int, default=16)
    args = ap.parse_args()

    fonts = Fonts(args.font_size)
    panes = []
    for title, path in args.pane:
        with open(path, encoding="utf-8", errors="replace") as f:
            rows = parse(f.read())
        while rows and not rows[-1]:
            rows.pop()
        panes.append((title, rows))
    cursors = {int(p): tuple(int(v) for v in xy.split(",")) for p, xy in args.cursor}

    cols = args.cols or max(1, max((sum(c[1] for c in r) for _, rows in panes for r in rows), default=1))
    nrows = args.rows or max(1, max(len(rows) for _, rows in panes))
    cw, chh = fonts.cell_w, fonts.cell_h
    margin, inner, title_h, gap = 14, 10, chh + 14, 12
    pane_w = cols * cw + 2 * inner
    pane_h = title_h + nrows * chh + 2 * inner
    width = 2 * margin + len(panes) * pane_w + (len(panes) - 1) * gap
    height = 2 * margin + pane_h

    img = Image.new("RGB", (width, height), WINDOW_BG)
    draw = ImageDraw.Draw(img)
    for i, (title, rows) in enumerate(panes):
        x = margin + i * (pane_w + gap)
        y = margin
        # Frame, title bar with three "window buttons", and the terminal area.
        draw.rounded_rectangle([x - 1, y - 1, x + pane_w, y + pane_h], radius=9, fill=SEPARATOR)
        draw.rounded_rectangle([x, y, x + pane_w - 1, y + pane_h - 1], radius=8, fill=BG)
        draw.rounded_rectangle([x, y, x + pane_w - 1, y + title_h], radius=8, fill=TITLE_BG)
        draw.rectangle([x, y + title_h - 8, x + pane_w - 1, y + title_h], fill=TITLE_BG)
        draw.line([x, y + title_h, x + pane_w - 1, y + title_h], fill=SEPARATOR)
        for k, colour in enumerate([(255, 95, 86), (255, 189, 46), (39, 201, 63)]):
            cx, cy, r = x + 16 + k * 20, y + title_h // 2, 6
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        tw = fonts.bold.getlength(title)
        draw.text((x + (pane_w - tw) / 2, y + (title_h - chh) / 2 + 2), title,
                  font=fonts.bold, fill=TITLE_FG)
        if i > 0:  # a thin separator line down the middle of the gap
            sx = x - gap // 2 - 1
            draw.line([sx, margin + 4, sx, height - margin - 4], fill=SEPARATOR, width=2)
        draw_pane(draw, fonts, rows, x + inner, y + title_h + inner, cols, nrows, cursors.get(i))
    img.save(args.out, optimize=True)
    print(f"{args.out}: {width}x{height}")


if __name__ == "__main__":
    main()
