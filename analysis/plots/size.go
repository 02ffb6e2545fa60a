package plots

import (
	"fmt"
	"regexp"
	"strconv"

	"gonum.org/v1/plot/vg"
)

// DPI is the resolution of the PNG charts: a chart w inches wide is
// w x DPI pixels.
const DPI = 96

// Size limits: smaller charts have no room for their axes and legends,
// larger ones make multi-megabyte reports.
const (
	minSize = 2 * vg.Inch
	maxSize = 40 * vg.Inch
)

var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)x([0-9]+(?:\.[0-9]+)?)(in|cm|mm|pt|px)?$`)

// ParseSize reads a chart size "WxH" with a unit: in, cm, mm, pt or px
// (pixels of the PNG, at DPI; the default when no unit is given), such as
// "8x5in", "20x12.5cm" or "768x480" (which is 8x5in). Each side must be
// between 2 and 40 inches (192 to 3840 px).
func ParseSize(s string) (w, h vg.Length, err error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("size %q: want WIDTHxHEIGHT with an optional unit in, cm, mm, pt or px (the default), e.g. 8x5in or 768x480", s)
	}
	unit := map[string]vg.Length{"in": vg.Inch, "cm": vg.Centimeter, "mm": vg.Millimeter, "pt": vg.Points(1), "px": vg.Inch / DPI, "": vg.Inch / DPI}[m[3]]
	side := func(v string) (vg.Length, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("size %q: %w", s, err)
		}
		l := vg.Length(f) * unit
		if l < minSize || l > maxSize {
			return 0, fmt.Errorf("size %q: each side must be between 2in and 40in (192 to 3840 px)", s)
		}
		return l, nil
	}
	if w, err = side(m[1]); err != nil {
		return 0, 0, err
	}
	if h, err = side(m[2]); err != nil {
		return 0, 0, err
	}
	return w, h, nil
}
