package main

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// chartInfo is what the chart's title and caption say about the run.
type chartInfo struct {
	cmd     string // "PING" or "GET"
	sparse  string // "1 request / 10ms"
	machine string // CPU model, CPU count, Go version
	setup   string // server wait policy and load
}

// series are the bars drawn per transport, in order: percentile and
// pattern, with a colour per pattern and a lighter one for p99.
var series = []struct {
	label string
	color color.RGBA
	value func(result) int64
}{
	{"sparse p50", color.RGBA{R: 200, G: 60, B: 50, A: 255}, func(r result) int64 { return r.sparse.ValueAtQuantile(50) }},
	{"sparse p99", color.RGBA{R: 240, G: 160, B: 150, A: 255}, func(r result) int64 { return r.sparse.ValueAtQuantile(99) }},
	{"back-to-back p50", color.RGBA{R: 50, G: 110, B: 190, A: 255}, func(r result) int64 { return r.dense.ValueAtQuantile(50) }},
	{"back-to-back p99", color.RGBA{R: 150, G: 185, B: 230, A: 255}, func(r result) int64 { return r.dense.ValueAtQuantile(99) }},
}

// drawChart writes a bar chart of p50 and p99 round trips per transport,
// sparse and back-to-back, on a logarithmic axis (shared memory and a
// socket differ by 10-100x, which a linear axis shows as slivers) with
// every bar's value written on it.
func drawChart(path string, results []result, info chartInfo) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Redis %s round trip through go-redis, p50 and p99 (lower is better)\n%s", info.cmd, info.machine)
	p.X.Label.Text = fmt.Sprintf("sparse: %s; %s", info.sparse, info.setup)
	p.X.Label.Padding = vg.Points(6)
	p.Y.Label.Text = "round trip (log scale)"
	p.Y.Scale = plot.LogScale{}

	lo, hi := math.Inf(1), 0.0
	var names []string
	for _, r := range results {
		names = append(names, r.name)
		for _, s := range series {
			v := us(s.value(r))
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	// Whole decades, so the ticks are the same from run to run, with room
	// above the tallest bar for its label and the legend.
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(max(lo, 0.01))))
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(max(hi, 0.1))+0.6))
	p.Y.Tick.Marker = decadeTicks{}

	width := vg.Points(15)
	for i, s := range series {
		b := &logBars{width: width, offset: (vg.Length(i) - 1.5) * (width + 1), color: s.color, floor: p.Y.Min}
		for _, r := range results {
			b.values = append(b.values, us(s.value(r)))
		}
		b.label = text.Style{
			Color:    color.Black,
			Font:     font.From(plot.DefaultFont, vg.Points(7)),
			Rotation: math.Pi / 2,
			XAlign:   text.XLeft,
			YAlign:   text.YCenter,
			Handler:  plot.DefaultTextHandler,
		}
		p.Add(b)
		p.Legend.Add(s.label, b)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.Padding = vg.Points(2)
	p.NominalX(names...)
	return p.Save(10*vg.Inch, 5.5*vg.Inch, path)
}

// logBars is a bar chart that works on a log axis: each bar rises from
// floor (the axis minimum) instead of from zero, and is labelled with its
// value in microseconds.
type logBars struct {
	values []float64 // one per transport, in microseconds
	width  vg.Length
	offset vg.Length // from the transport's tick to the bar's centre
	color  color.Color
	floor  float64
	label  text.Style
}

func (b *logBars) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	for i, v := range b.values {
		x := trX(float64(i)) + b.offset
		top := trY(v)
		c.FillPolygon(b.color, c.ClipPolygonY([]vg.Point{
			{X: x - b.width/2, Y: trY(b.floor)},
			{X: x - b.width/2, Y: top},
			{X: x + b.width/2, Y: top},
			{X: x + b.width/2, Y: trY(b.floor)},
		}))
		c.FillText(b.label, vg.Point{X: x, Y: top + vg.Points(2)}, formatMicros(v))
	}
}

// DataRange covers the transports' ticks with half a slot either side;
// the y range is set by drawChart.
func (b *logBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	return -0.5, float64(len(b.values)) - 0.5, b.floor, b.floor
}

// Thumbnail draws the legend's swatch.
func (b *logBars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y},
		{X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y},
	})
}

// formatMicros writes a duration in microseconds with three significant
// figures, switching to ms from 1000 us.
func formatMicros(v float64) string {
	unit := " us"
	if v >= 1000 {
		v, unit = v/1000, " ms"
	}
	prec := 0
	switch {
	case v < 10:
		prec = 2
	case v < 100:
		prec = 1
	}
	return strconv.FormatFloat(v, 'f', prec, 64) + unit
}

// decadeTicks labels every power of ten and marks the steps between.
type decadeTicks struct{}

func (decadeTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for d := math.Pow(10, math.Floor(math.Log10(lo))); d <= hi*1.0001; d *= 10 {
		ticks = append(ticks, plot.Tick{Value: d, Label: formatDecade(d)})
		for m := 2.0; m < 10; m++ {
			if v := d * m; v <= hi {
				ticks = append(ticks, plot.Tick{Value: v})
			}
		}
	}
	return ticks
}

func formatDecade(us float64) string {
	switch {
	case us >= 1000:
		return strconv.FormatFloat(us/1000, 'g', -1, 64) + " ms"
	default:
		return strconv.FormatFloat(us, 'g', -1, 64) + " us"
	}
}
