package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// dkimCommand runs `dkim show [-domain D] [-all]`: it prints the DNS TXT
// record to publish for the DKIM key in the data directory (made if
// missing, as on the server's first run), in zone-file form, and with -all
// the MX, SPF and DMARC records a deployment needs beside it.
func dkimCommand(ctx context.Context, cfg *config, args []string, stdout, stderr io.Writer) error {
	usage := func() error {
		fmt.Fprintln(stderr, "usage: mailserver [flags] dkim show [-domain D]... [-all]")
		return errUsage
	}
	if len(args) == 0 || args[0] != "show" {
		return usage()
	}
	fs := flag.NewFlagSet("dkim show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var domains multiFlag
	fs.Var(&domains, "domain", "a mail domain (repeatable; default: the domains of the accounts, else -demo-domain)")
	all := fs.Bool("all", false, "also print the MX, SPF and DMARC records")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
		return usage()
	}
	key, created, err := loadDKIM(cfg)
	if err != nil {
		return fmt.Errorf("DKIM key: %w", err)
	}
	if created {
		fmt.Fprintf(stderr, "created a DKIM key in %s/dkim/%s.pem\n", cfg.Data, key.Selector)
	}
	if len(domains) == 0 {
		if domains, err = accountDomains(ctx, cfg); err != nil {
			return err
		}
	}
	if len(domains) == 0 {
		domains = multiFlag{cfg.DemoDomain}
	}
	for _, d := range domains {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		for _, rec := range dnsRecords(cfg, key, d, *all) {
			fmt.Fprintln(stdout, rec)
		}
	}
	return nil
}

// dnsRecords are the zone-file lines for domain d: the DKIM TXT record,
// and with all also MX, SPF and DMARC.
func dnsRecords(cfg *config, key *dkimKey, d string, all bool) []string {
	var out []string
	if all {
		host := strings.TrimSuffix(cfg.Hostname, ".")
		out = append(out,
			fmt.Sprintf("%s.\tIN\tMX\t10 %s.", d, host),
			fmt.Sprintf("%s.\tIN\tTXT\t\"v=spf1 mx -all\"", d))
	}
	out = append(out, fmt.Sprintf("%s._domainkey.%s.\tIN\tTXT\t%s", key.Selector, d, txtStrings(key.Record)))
	if all {
		out = append(out, fmt.Sprintf("_dmarc.%s.\tIN\tTXT\t\"v=DMARC1; p=quarantine; rua=mailto:postmaster@%s\"", d, d))
	}
	return out
}

// txtStrings splits a TXT value into the quoted strings of at most 255
// bytes that DNS needs, in parentheses when there are several.
func txtStrings(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	if len(parts) == 1 {
		return parts[0]
	}
	return "( " + strings.Join(parts, " ") + " )"
}

// accountDomains lists the domains of the accounts, sorted.
func accountDomains(ctx context.Context, cfg *config) (multiFlag, error) {
	users, closeFn, err := openUsers(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	defer users.Close()
	names, err := users.List(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out multiFlag
	for _, n := range names {
		if _, d, ok := strings.Cut(n, "@"); ok && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, nil
}

// dnsHint is the banner line naming the DNS records a deployment needs.
func dnsHint(w io.Writer, a *app) {
	fmt.Fprintf(w, "  DNS         a real deployment publishes, per mail domain, MX (-> %s), SPF, DKIM (selector %s) and DMARC records: `mailserver dkim show -all` prints them\n",
		a.cfg.Hostname, a.dkim.Selector)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
