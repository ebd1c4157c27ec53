package contract_test

import (
	"slices"
	"testing"

	"github.com/microshop/microshop/internal/console"
)

// TestConsoleTopologyMatchesTheEvents keeps the console's diagram true: each
// service it draws publishes exactly the channels the AsyncAPI document names
// it the producer of, and consumes exactly those that list it as a consumer,
// as the consumer groups listed there. (The contract tests keep the document
// equal to what the services subscribe to.)
func TestConsoleTopologyMatchesTheEvents(t *testing.T) {
	c := loadShopEvents(t)
	publishes, consumes, groups := map[string][]string{}, map[string][]string{}, map[string][]string{}
	for topic, ch := range c.doc.Channels {
		publishes[ch.Producer] = append(publishes[ch.Producer], topic)
		for _, lc := range ch.Consumers {
			if !slices.Contains(consumes[lc.Service], topic) {
				consumes[lc.Service] = append(consumes[lc.Service], topic)
			}
			if !slices.Contains(groups[lc.Service], lc.Group) {
				groups[lc.Service] = append(groups[lc.Service], lc.Group)
			}
		}
	}
	drawn := map[string]bool{}
	for _, n := range console.Nodes {
		drawn[n.Name] = true
		if got, want := sorted(n.Publishes), sorted(publishes[n.Name]); !slices.Equal(got, want) {
			t.Errorf("the console draws %s publishing %v; the event document says %v", n.Name, got, want)
		}
		if got, want := sorted(n.Consumes), sorted(consumes[n.Name]); !slices.Equal(got, want) {
			t.Errorf("the console draws %s consuming %v; the event document says %v", n.Name, got, want)
		}
		// The console reads each group's queue from the broker by name.
		if got, want := sorted(n.Groups), sorted(groups[n.Name]); !slices.Equal(got, want) {
			t.Errorf("the console reads %s's queues as groups %v; the event document says %v", n.Name, got, want)
		}
	}
	for svc := range publishes {
		if !drawn[svc] {
			t.Errorf("%s publishes events but the console does not draw it", svc)
		}
	}
	for svc := range consumes {
		if !drawn[svc] {
			t.Errorf("%s consumes events but the console does not draw it", svc)
		}
	}
	top := console.NewTopology(console.Nodes)
	for _, e := range top.Edges {
		if !drawn[e.From] || !drawn[e.To] {
			t.Errorf("edge %s -> %s joins a node the console does not draw", e.From, e.To)
		}
	}
}

func sorted(s []string) []string {
	return slices.Sorted(slices.Values(s))
}
