package event

import _ "embed"

// AsyncAPI is the contract of every event and command the services publish:
// an AsyncAPI 2.6 document with a channel per topic (its producer and its
// consumer groups), a message per event type, the envelope and each
// payload's JSON Schema. The gateway serves it next to the OpenAPI
// documents, and the contract tests hold the producers and the consumers
// to it.
//
//go:embed asyncapi.yaml
var AsyncAPI []byte
