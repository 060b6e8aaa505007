package main

import (
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// drawChart writes a bar chart of the p50 round trips, sparse and
// back-to-back side by side per transport, like redis-module-shm's
// latency_barchart.png.
func drawChart(path string, results []result, cmd string, interval time.Duration, machine string) error {
	p := plot.New()
	p.Title.Text = "Redis " + cmd + " round trip through go-redis, p50 (lower is better)\n" + machine
	p.Y.Label.Text = "microseconds"
	var sparse, dense plotter.Values
	var names []string
	for _, r := range results {
		sparse = append(sparse, us(r.sparse.ValueAtQuantile(50)))
		dense = append(dense, us(r.dense.ValueAtQuantile(50)))
		names = append(names, r.name)
	}
	w := vg.Points(28)
	bs, err := plotter.NewBarChart(sparse, w)
	if err != nil {
		return err
	}
	bs.Color = color.RGBA{R: 200, G: 60, B: 50, A: 255}
	bs.Offset = -w / 2
	bd, err := plotter.NewBarChart(dense, w)
	if err != nil {
		return err
	}
	bd.Color = color.RGBA{R: 50, G: 110, B: 190, A: 255}
	bd.Offset = w / 2
	p.Add(bs, bd)
	p.Legend.Add(fmt.Sprintf("sparse (1 request / %v)", interval), bs)
	p.Legend.Add("back-to-back", bd)
	p.Legend.Top = true
	p.NominalX(names...)
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}
