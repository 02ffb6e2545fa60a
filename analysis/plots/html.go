package plots

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"os"
	"path/filepath"

	"github.com/natspipe/natspipe/analysis"
)

// Files WriteReport writes besides the charts.
const (
	ReportFile = "report.html"
	JSONFile   = "analysis.json"
)

// WriteReport draws every chart of rep into dir as PNG and SVG, writes the
// analysis as dir/analysis.json, and writes dir/report.html: the narrative
// (analysis.Report.Narrative), the summary tables, the charts and the
// detail tables in one self-contained file, the charts embedded as PNG
// data: URIs. Its only link is to analysis.json beside it. It creates dir
// and returns report.html's path.
func WriteReport(rep *analysis.Report, dir string, opts Options) (string, error) {
	opts = opts.withDefaults()
	charts, err := Charts(rep, opts)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	type figure struct {
		Name, Title, Caption string
		PNG                  template.URL // a data: URI
	}
	var figs []figure
	for _, ch := range charts {
		if err := ch.Save(dir, opts.Width, opts.Height); err != nil {
			return "", fmt.Errorf("report: %w", err)
		}
		png, err := os.ReadFile(filepath.Join(dir, ch.Name+".png"))
		if err != nil {
			return "", fmt.Errorf("report: embed %s: %w", ch.Name, err)
		}
		uri := "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
		figs = append(figs, figure{Name: ch.Name, Title: ch.Title, Caption: ch.Caption, PNG: template.URL(uri)})
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, JSONFile), js.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	tables := rep.Tables()
	summary := min(2, len(tables)) // configurations, runs
	data := struct {
		Runs      []*analysis.Run
		Narrative []string
		Summary   []analysis.Table
		Details   []analysis.Table
		Figures   []figure
		JSONFile  string
		Style     template.CSS
	}{rep.Runs, rep.Narrative(), tables[:summary], tables[summary:], figs, JSONFile, template.CSS(css)}
	t, err := template.New("report").Parse(reportHTML)
	if err != nil {
		return "", fmt.Errorf("report: template: %w", err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	path := filepath.Join(dir, ReportFile)
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return path, nil
}

const css = `
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: .5em 0; font: 13px ui-monospace, monospace; }
th, td { padding: 2px 10px; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
p.note { color: #666; font-size: 12px; margin: 0; }
figure { margin: 2em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; font-size: 14px; }
div.story { background: #f8f8f4; border-left: 4px solid #4e79a7; padding: .2em 1em; }
div.story p { margin: .6em 0; }
`

const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>natspipe analysis</title>
<style>{{.Style}}</style>
</head>
<body>
<h1>natspipe analysis</h1>
<p>{{len .Runs}} run{{if ne (len .Runs) 1}}s{{end}}:{{range $i, $r := .Runs}}{{if $i}},{{end}} {{$r.Label}}{{end}}.
The figures are embedded; beside this file, each is also a PNG and an SVG, and every number is in <a href="{{.JSONFile}}">{{.JSONFile}}</a>.</p>
<div class="story">
{{range .Narrative}}<p>{{.}}</p>
{{end}}</div>
{{define "table"}}<h3>{{.Title}}</h3>
<table>
<thead><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{range .Notes}}<p class="note">{{.}}</p>
{{end}}{{end}}
<h2>Summary</h2>
{{range .Summary}}{{template "table" .}}{{end}}
<h2>Figures</h2>
{{range .Figures}}<figure id="{{.Name}}">
<img src="{{.PNG}}" alt="{{.Title}}">
<figcaption>{{.Caption}} ({{.Name}}.png, {{.Name}}.svg)</figcaption>
</figure>
{{end}}
<h2>Details</h2>
{{range .Details}}{{template "table" .}}{{end}}
</body>
</html>
`
