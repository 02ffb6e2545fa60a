package pipefile_test

import (
	"fmt"
	"time"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/pipefile"
)

// A pipeline file read and turned into the configuration benchmarks use.
func ExampleLoad() {
	p, err := pipefile.Load("../../testdata/pipelines/seed.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	rc, _ := p.RunConfig()
	fmt.Println(p.Spec.TimesString(), p.VariantName(), p.Alloc, rc.Bound, "msgs/s")
	// Output: 10ms,40ms,10ms,10ms p4 1-4-1-1 100 msgs/s
}

// The same description in code, with a heavy-tailed stage.
func ExampleBuilder() {
	tail, _ := pipelines.LognormalTimeP99(5*time.Millisecond, 40*time.Millisecond)
	p, err := pipefile.New("tail").
		Stage("S1", pipelines.ConstantTime(2*time.Millisecond)).
		Stage("S2", tail).
		Variant("p4").Alloc(1, 2).Load(0.6).Arrivals(pipelines.Poisson).
		Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s, S2 mean %v cv^2 %.2f\n", p.Spec.TimesString(), p.Spec.Durations[1], p.Spec.Time(1).CV2())
	// Output: 2ms,lognormal(5ms,p99=40ms), S2 mean 5ms cv^2 3.29
}

// A bad file's error names the file, line, column and field.
func ExampleParse() {
	_, err := pipefile.Parse("p.yaml", []byte("stages:\n  - time: 10ms\n  - time: exp(-5ms)\n"))
	fmt.Println(err)
	// Output: p.yaml:3:11: stages[1].time: exp(-5ms): exp mean -5ms: must be > 0
}
