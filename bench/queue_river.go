package main

import "encoding/json"

// decodeRiverArgs decodes a River job's JSON-encoded arguments.
func decodeRiverArgs(b []byte, v any) error { return json.Unmarshal(b, v) }
