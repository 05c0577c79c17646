package main

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mailbricks/mailbricks"
)

// The OpenAPI 3.1 document at /api/openapi.json is generated from the
// routes table and extraRoutes, so it cannot drift from what the server
// registers; request bodies are described from the Go types the handlers
// decode.

// requestTypes maps a route's Body name to the type its handler decodes.
var requestTypes = map[string]reflect.Type{
	"loginRequest":  reflect.TypeFor[loginRequest](),
	"folderRequest": reflect.TypeFor[folderRequest](),
	"flagsRequest":  reflect.TypeFor[flagsRequest](),
	"sendRequest":   reflect.TypeFor[sendRequest](),
}

// responseTypes maps "METHOD path" to the JSON type of a 2xx answer, where
// it is one of the API's named shapes.
var responseTypes = map[string]reflect.Type{
	"GET /api/messages/{id}":         reflect.TypeFor[messageJSON](),
	"POST /api/messages/{id}/read":   reflect.TypeFor[messageJSON](),
	"POST /api/messages/{id}/unread": reflect.TypeFor[messageJSON](),
	"POST /api/messages/{id}/flags":  reflect.TypeFor[messageJSON](),
	"POST /api/messages/{id}/move":   reflect.TypeFor[messageJSON](),
	"POST /api/folders":              reflect.TypeFor[folderJSON](),
	"GET /api/messages/{id}/body":    reflect.TypeFor[bodyJSON](),
	"GET /api/messages": reflect.TypeFor[struct {
		Messages []messageJSON `json:"messages"`
		Cursor   string        `json:"cursor"`
	}](),
	"GET /api/folders": reflect.TypeFor[struct {
		Folders []folderJSON `json:"folders"`
	}](),
	"GET /api/search": reflect.TypeFor[struct {
		Total  int64     `json:"total"`
		Hits   []hitJSON `json:"hits"`
		Cursor string    `json:"cursor"`
	}](),
	"POST /api/login": reflect.TypeFor[struct {
		Token   string    `json:"token"`
		Expires time.Time `json:"expires"`
		User    string    `json:"user"`
	}](),
}

// rawResponses are routes whose answer is not JSON.
var rawResponses = map[string]string{
	"GET /api/messages/{id}/raw":             "message/rfc822",
	"GET /api/messages/{id}/attachments/{n}": "application/octet-stream",
	"GET /api/events":                        "text/event-stream",
}

var pathParamRE = regexp.MustCompile(`\{([a-z]+)\}`)

var (
	openAPIOnce sync.Once
	openAPIDoc  map[string]any
)

// openAPIDocument returns the API's OpenAPI 3.1 document.
func openAPIDocument() map[string]any {
	openAPIOnce.Do(func() { openAPIDoc = buildOpenAPI(append(append([]route{}, routes...), extraRoutes...)) })
	return openAPIDoc
}

func buildOpenAPI(rts []route) map[string]any {
	errSchema := map[string]any{"$ref": "#/components/schemas/Error"}
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": errSchema}}}
	}
	paths := map[string]any{}
	for _, rt := range rts {
		item, _ := paths[rt.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.Path] = item
		}
		key := rt.Method + " " + rt.Path
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt),
		}
		var params []any
		for _, m := range pathParamRE.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "required": false, "schema": map[string]any{"type": "string"}})
		}
		if rt.TokenInQuery {
			params = append(params, map[string]any{"name": "access_token", "in": "query", "required": false,
				"description": "a bearer token from /api/login, for browsers that cannot set headers", "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.Body != "" {
			t := requestTypes[rt.Body]
			var schema any = map[string]any{"type": "object"}
			if t != nil {
				schema = jsonSchema(t)
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
		}
		okStatus, okDesc := "200", "OK"
		switch {
		case rt.Method == "DELETE":
			okStatus, okDesc = "204", "done"
		case key == "POST /api/folders":
			okStatus, okDesc = "201", "created"
		case key == "POST /api/send":
			okStatus, okDesc = "202", "accepted: queued for delivery, copy in Sent"
		}
		ok := map[string]any{"description": okDesc}
		if ct, raw := rawResponses[key]; raw {
			ok["content"] = map[string]any{ct: map[string]any{"schema": map[string]any{"type": "string"}}}
		} else if t := responseTypes[key]; t != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": jsonSchema(t)}}
		} else if okStatus != "204" {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		responses := map[string]any{okStatus: ok, "400": errResp("bad input"), "default": errResp("an error")}
		if !rt.Public {
			responses["401"] = errResp("credentials missing or wrong")
			op["security"] = []any{map[string]any{"basic": []any{}}, map[string]any{"bearer": []any{}}}
		} else {
			op["security"] = []any{}
		}
		if strings.Contains(rt.Path, "{id}") {
			responses["404"] = errResp("no such message (or another user's)")
		}
		op["responses"] = responses
		item[strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "mailbricks mailserver API",
			"version":     "1",
			"description": "The JSON API of the mailbricks reference assembly (examples/mailserver). Errors are {\"error\":{\"code\",\"message\"}}.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"basic":  map[string]any{"type": "http", "scheme": "basic"},
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "a token from POST /api/login"},
			},
			"schemas": map[string]any{
				"Error": map[string]any{"type": "object", "required": []any{"error"}, "properties": map[string]any{
					"error": map[string]any{"type": "object", "required": []any{"code", "message"}, "properties": map[string]any{
						"code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}}}}},
			},
		},
	}
}

// operationID names an operation from its method and path:
// GET /api/messages/{id}/raw → getMessagesIdRaw.
func operationID(rt route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.Method))
	for _, seg := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(rt.Path, "/api"), "/"), "/") {
		seg = strings.Trim(seg, "{}")
		seg = strings.NewReplacer(".", "", "-", "").Replace(seg)
		if seg != "" {
			b.WriteString(strings.ToUpper(seg[:1]) + seg[1:])
		}
	}
	return b.String()
}

var timeType = reflect.TypeFor[time.Time]()

// jsonSchema describes t as encoding/json encodes it.
func jsonSchema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == reflect.TypeFor[mailbricks.UserID]():
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": jsonSchema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": jsonSchema(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		addFields(t, props)
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}

func addFields(t reflect.Type, props map[string]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(ft, props)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = jsonSchema(f.Type)
	}
}

func (h *api) openapi(w http.ResponseWriter, r *http.Request, _ mailbricks.UserID) error {
	writeJSON(w, http.StatusOK, openAPIDocument())
	return nil
}
