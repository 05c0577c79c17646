package main

import (
	"flag"
	"fmt"
	"slices"
)

// The delivery suite measures the delivery package's SMTP edges against
// Postfix's tools. Its workloads live in several files (inbound, outbound);
// each registers a deliveryPart from an init function, so the files do not
// share code beyond this one.

// deliveryPart is one file's share of the delivery suite.
type deliveryPart struct {
	// Impls lists the implementations this part measures, ours first.
	Impls []string
	// Flags registers the part's own flags; it may be nil.
	Flags func(fs *flag.FlagSet)
	// Run measures impl; it is called only for impls the part lists.
	Run func(impl string, c *config, r *reporter) error
	// Ratios derives the part's RATIO lines.
	Ratios func(rs *results) []ratio
}

// deliveryParts holds the registered parts in registration order.
var deliveryParts []deliveryPart

// registerDeliveryPart adds a part to the delivery suite; the first part
// registers the suite itself, so a build without parts lists no empty suite.
func registerDeliveryPart(p deliveryPart) {
	if len(deliveryParts) == 0 {
		register("delivery", func() suite { return &deliverySuite{} })
	}
	deliveryParts = append(deliveryParts, p)
}

// deliverySuite is the union of the registered parts.
type deliverySuite struct{}

func (s *deliverySuite) Impls() []string {
	var out []string
	for _, p := range deliveryParts {
		for _, impl := range p.Impls {
			if !slices.Contains(out, impl) {
				out = append(out, impl)
			}
		}
	}
	return out
}

func (s *deliverySuite) Flags(fs *flag.FlagSet) {
	for _, p := range deliveryParts {
		if p.Flags != nil {
			p.Flags(fs)
		}
	}
}

func (s *deliverySuite) Run(impl string, c *config, r *reporter) error {
	ran := false
	for _, p := range deliveryParts {
		if !slices.Contains(p.Impls, impl) {
			continue
		}
		ran = true
		if err := p.Run(impl, c, r); err != nil {
			return err
		}
	}
	if !ran {
		return fmt.Errorf("delivery: unknown implementation %q", impl)
	}
	return nil
}

func (s *deliverySuite) Ratios(rs *results) []ratio {
	var out []ratio
	for _, p := range deliveryParts {
		if p.Ratios != nil {
			out = append(out, p.Ratios(rs)...)
		}
	}
	return out
}
