package plan_test

import (
	"fmt"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/plan"
)

// The best allocations of 7 workers over the study's pipeline, their
// latency predicted at 80% of the best bound.
func ExampleModel_Rank() {
	m := plan.Model{Spec: pipelines.DefaultSpec(), Dispatch: plan.Random}
	ps, err := m.Rank(7, plan.Load{Fraction: 0.8})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range ps[:3] {
		fmt.Printf("%s bound %.0f msgs/s latency %.1f ms\n", p.Alloc, p.Bound, p.Latency*1e3)
	}
	// Output:
	// 1-4-1-1 bound 100 msgs/s latency 171.6 ms
	// 1-3-1-2 bound 75 msgs/s latency +Inf ms
	// 1-3-2-1 bound 75 msgs/s latency +Inf ms
}

// The fewest workers whose bound reaches 150 msgs/s.
func ExampleModel_Target() {
	m := plan.Model{Spec: pipelines.DefaultSpec()}
	a, _ := m.Target(150)
	fmt.Println(a, a.Total(), "workers")
	// Output: 2-6-2-2 12 workers
}
