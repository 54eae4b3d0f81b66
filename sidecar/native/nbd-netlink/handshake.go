package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// NBD fixed-newstyle constants (doc/proto.md of the NBD project).
const (
	nbdMagic         = 0x4e42444d41474943 // "NBDMAGIC"
	optMagic         = 0x49484156454f5054 // "IHAVEOPT"
	optReplyMagic    = 0x0003e889045565a9
	flagFixedNew     = 1 << 0
	flagNoZeroes     = 1 << 1
	optGo            = 7
	repAck           = 1
	repInfo          = 3
	repErrBit        = 1 << 31
	infoExport       = 0
	transmitReadOnly = 1 << 1
)

// export is what the server said about the export during the handshake.
type export struct {
	size  uint64
	flags uint16
}

// negotiate runs the handshake up to the transmission phase with NBD_OPT_GO, so the
// kernel gets a socket that already speaks the transmission protocol.
func negotiate(c net.Conn, name string) (export, error) {
	var hello struct {
		Magic, Opt uint64
		Flags      uint16
	}
	if err := binary.Read(c, binary.BigEndian, &hello); err != nil {
		return export{}, fmt.Errorf("reading the server greeting: %w", err)
	}
	if hello.Magic != nbdMagic || hello.Opt != optMagic {
		return export{}, fmt.Errorf("not a newstyle NBD server (magic %#x %#x)", hello.Magic, hello.Opt)
	}
	if hello.Flags&flagFixedNew == 0 {
		return export{}, fmt.Errorf("server does not speak fixed newstyle")
	}
	clientFlags := uint32(flagFixedNew) | uint32(hello.Flags&flagNoZeroes)
	req := make([]byte, 0, 64+len(name))
	req = binary.BigEndian.AppendUint32(req, clientFlags)
	req = binary.BigEndian.AppendUint64(req, optMagic)
	req = binary.BigEndian.AppendUint32(req, optGo)
	req = binary.BigEndian.AppendUint32(req, uint32(4+len(name)+2))
	req = binary.BigEndian.AppendUint32(req, uint32(len(name)))
	req = append(req, name...)
	req = binary.BigEndian.AppendUint16(req, 0) // no information requests: NBD_INFO_EXPORT always comes
	if _, err := c.Write(req); err != nil {
		return export{}, fmt.Errorf("sending NBD_OPT_GO: %w", err)
	}
	var ex export
	seen := false
	for {
		var rep struct {
			Magic        uint64
			Option, Type uint32
			Length       uint32
		}
		if err := binary.Read(c, binary.BigEndian, &rep); err != nil {
			return export{}, fmt.Errorf("reading the option reply: %w", err)
		}
		if rep.Magic != optReplyMagic || rep.Option != optGo {
			return export{}, fmt.Errorf("malformed option reply (magic %#x option %d)", rep.Magic, rep.Option)
		}
		if rep.Length > 1<<20 {
			return export{}, fmt.Errorf("option reply of %d bytes", rep.Length)
		}
		data := make([]byte, rep.Length)
		if _, err := io.ReadFull(c, data); err != nil {
			return export{}, fmt.Errorf("reading the option reply: %w", err)
		}
		switch {
		case rep.Type&repErrBit != 0:
			return export{}, fmt.Errorf("server refused export %q (error %#x): %s", name, rep.Type, string(data))
		case rep.Type == repInfo && len(data) >= 12 && binary.BigEndian.Uint16(data) == infoExport:
			ex = export{size: binary.BigEndian.Uint64(data[2:]), flags: binary.BigEndian.Uint16(data[10:])}
			seen = true
		case rep.Type == repAck:
			if !seen {
				return export{}, fmt.Errorf("server acknowledged NBD_OPT_GO without NBD_INFO_EXPORT")
			}
			return ex, nil
		}
	}
}
