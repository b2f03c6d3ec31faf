package bench

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion names the layout of the JSON report; it changes when a
// field changes meaning or goes away.
const SchemaVersion = "tenantkv-bench/1"

// Report is the outcome of one bench invocation: one or more scenarios,
// with where and how they ran.
type Report struct {
	Schema      string            `json:"schema"`
	Date        time.Time         `json:"date"`
	CommandLine []string          `json:"command_line"`
	Machine     Machine           `json:"machine"`
	PlannedSec  float64           `json:"planned_sec,omitempty"`
	ElapsedSec  float64           `json:"elapsed_sec"`
	Scenarios   []*ScenarioResult `json:"scenarios"`
}

// NewReport returns an empty report dated now, for the given command line.
func NewReport(commandLine []string) *Report {
	return &Report{
		Schema:      SchemaVersion,
		Date:        time.Now().UTC().Truncate(time.Second),
		CommandLine: commandLine,
		Machine:     LocalMachine(),
	}
}

// ScenarioResult is what one scenario measured: its runs, the figures
// derived from them (ratios, rates) and notes on what it saw.
//
// Throughput, Latency and BaselineRun repeat the figures of the scenario's
// first run, its baseline, so that every scenario has them at the top
// level; Errors sums the errors of every run, rate-limited ones included.
type ScenarioResult struct {
	Name        string           `json:"name"`
	Description string           `json:"description"`
	Target      string           `json:"target"`
	BaselineRun string           `json:"baseline_run"`
	Throughput  float64          `json:"throughput_ops_per_sec"`
	Latency     Latency          `json:"latency_us"`
	Errors      map[string]int64 `json:"errors"`
	Figures     []Figure         `json:"figures,omitempty"`
	Notes       []string         `json:"notes,omitempty"`
	ElapsedSec  float64          `json:"elapsed_sec"`
	Runs        []*Result        `json:"runs"`
}

// Figure is one number a scenario derives from its runs.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Add appends a figure, rounded to four significant digits.
func (s *ScenarioResult) Add(name string, value float64, unit string) {
	if v, err := strconv.ParseFloat(strconv.FormatFloat(value, 'g', 4, 64), 64); err == nil {
		value = v
	}
	s.Figures = append(s.Figures, Figure{Name: name, Value: value, Unit: unit})
}

// Note appends a note.
func (s *ScenarioResult) Note(note string) { s.Notes = append(s.Notes, note) }

// Finish fills in the baseline figures and the error total from the runs.
func (s *ScenarioResult) Finish() {
	s.Errors = map[string]int64{}
	for _, r := range s.Runs {
		for k, v := range r.Errors {
			s.Errors[k] += v
		}
		if r.RateLimited > 0 {
			s.Errors[classRateLimited] += r.RateLimited
		}
	}
	if len(s.Runs) > 0 {
		s.BaselineRun = s.Runs[0].Name
		s.Throughput = s.Runs[0].Throughput
		s.Latency = s.Runs[0].Latency
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Machine describes the computer a report was made on.
type Machine struct {
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	NumCPU    int    `json:"num_cpu"`
	GoVersion string `json:"go_version"`
	CPUModel  string `json:"cpu_model,omitempty"`
	MemBytes  uint64 `json:"mem_bytes,omitempty"`
}

// LocalMachine describes this computer; the CPU model and memory size come
// from /proc where there is one.
func LocalMachine() Machine {
	m := Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		n, _ := strconv.ParseUint(strings.TrimSuffix(kb, " kB"), 10, 64)
		m.MemBytes = n << 10
	}
	return m
}

// String describes the machine on one line.
func (m Machine) String() string {
	s := m.GOOS + "/" + m.GOARCH + ", " + strconv.Itoa(m.NumCPU) + " CPUs"
	if m.CPUModel != "" {
		s += " (" + m.CPUModel + ")"
	}
	if m.MemBytes > 0 {
		s += ", " + strconv.FormatUint(m.MemBytes>>30, 10) + " GiB"
	}
	return s + ", " + m.GoVersion
}

// procField returns the value of the first "name: value" line of a /proc
// file, or "".
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
