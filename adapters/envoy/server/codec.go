package server

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// sharedBodyMin is the size of unknown fields from which codec sends
// them without copying.
const sharedBodyMin = 4 << 10

// codec is the gRPC codec of the xDS server (see GRPCServerOptions): the
// standard proto codec, except that a message carrying many bytes of
// unknown fields, as the answers whose resources were encoded once for
// several nodes do (see sotwResponse), is sent as its known fields
// followed by the unknown fields as they are, without copying them into
// a buffer of its own. The bytes on the wire are those the standard codec
// writes.
type codec struct{ std encoding.CodecV2 }

var _ encoding.CodecV2 = codec{}

func newCodec() codec { return codec{std: encoding.GetCodecV2(proto.Name)} }

func (c codec) Name() string { return c.std.Name() }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.std.Unmarshal(data, v) }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	var m protov2.Message
	switch msg := v.(type) {
	case protov2.Message:
		m = msg
	case protoadapt.MessageV1:
		m = protoadapt.MessageV2Of(msg)
	default:
		return c.std.Marshal(v)
	}
	r := m.ProtoReflect()
	body := r.GetUnknown()
	if len(body) < sharedBodyMin {
		return c.std.Marshal(v)
	}
	// The known fields, in a shallow copy: the message may be shared.
	known := r.New()
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		known.Set(fd, v)
		return true
	})
	head, err := protov2.Marshal(known.Interface())
	if err != nil {
		return nil, fmt.Errorf("marshalling %s: %w", r.Descriptor().FullName(), err)
	}
	return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(body)}, nil
}
