package main

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Generic netlink interface of drivers/block/nbd.c (include/uapi/linux/nbd-netlink.h).
const (
	cmdConnect     = 1
	cmdDisconnect  = 2
	cmdReconfigure = 3
	cmdStatus      = 5

	attrIndex           = 1
	attrSizeBytes       = 2
	attrBlockSizeBytes  = 3
	attrTimeout         = 4
	attrServerFlags     = 5
	attrClientFlags     = 6
	attrSockets         = 7
	attrDeadConnTimeout = 8
	attrDeviceList      = 9
	attrBackend         = 10

	sockItem        = 1
	sockFd          = 1
	deviceItem      = 1
	deviceIndex     = 1
	deviceConnected = 2

	genlVersion = 1
)

func request(cmd uint8) (*nl.NetlinkRequest, error) {
	fam, err := netlink.GenlFamilyGet("nbd")
	if err != nil {
		return nil, fmt.Errorf("the nbd generic netlink family is missing (is the nbd module loaded?): %w", err)
	}
	req := nl.NewNetlinkRequest(int(fam.ID), unix.NLM_F_ACK)
	req.AddData(&nl.Genlmsg{Command: cmd, Version: genlVersion})
	return req, nil
}

func sockets(fd uintptr) *nl.RtAttr {
	list := nl.NewRtAttr(attrSockets|unix.NLA_F_NESTED, nil)
	item := list.AddRtAttr(sockItem|unix.NLA_F_NESTED, nil)
	item.AddRtAttr(sockFd, nl.Uint32Attr(uint32(fd)))
	return list
}

type connectArgs struct {
	index                        int
	fd                           uintptr
	size, blockSize, serverFlags uint64
	timeout, deadTimeout         uint64
	backend                      string
}

func nbdConnect(a connectArgs) (int, error) {
	req, err := request(cmdConnect)
	if err != nil {
		return -1, err
	}
	if a.index >= 0 {
		req.AddData(nl.NewRtAttr(attrIndex, nl.Uint32Attr(uint32(a.index))))
	}
	req.AddData(nl.NewRtAttr(attrSizeBytes, nl.Uint64Attr(a.size)))
	req.AddData(nl.NewRtAttr(attrBlockSizeBytes, nl.Uint64Attr(a.blockSize)))
	req.AddData(nl.NewRtAttr(attrServerFlags, nl.Uint64Attr(a.serverFlags)))
	// No DESTROY_ON_DISCONNECT or DISCONNECT_ON_CLOSE: the device must outlive the
	// sidecar process, or a crash would fail I/O instead of stalling it.
	req.AddData(nl.NewRtAttr(attrClientFlags, nl.Uint64Attr(0)))
	// The request timeout is what requeues I/O that was in flight when the connection
	// died; the dead-connection timeout is how long requests wait for a reconfigure.
	req.AddData(nl.NewRtAttr(attrTimeout, nl.Uint64Attr(a.timeout)))
	req.AddData(nl.NewRtAttr(attrDeadConnTimeout, nl.Uint64Attr(a.deadTimeout)))
	if a.backend != "" {
		req.AddData(nl.NewRtAttr(attrBackend, nl.ZeroTerminated(a.backend)))
	}
	req.AddData(sockets(a.fd))
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return -1, fmt.Errorf("NBD_CMD_CONNECT: %w", err)
	}
	for _, m := range msgs {
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return -1, err
		}
		for _, at := range attrs {
			if at.Attr.Type == attrIndex && len(at.Value) >= 4 {
				return int(binary.NativeEndian.Uint32(at.Value)), nil
			}
		}
	}
	if a.index >= 0 {
		return a.index, nil
	}
	return -1, fmt.Errorf("NBD_CMD_CONNECT: the kernel did not say which device it used")
}

func nbdReconfigure(index int, fd uintptr, backend string) error {
	req, err := request(cmdReconfigure)
	if err != nil {
		return err
	}
	req.AddData(nl.NewRtAttr(attrIndex, nl.Uint32Attr(uint32(index))))
	// The kernel refuses a reconfigure that does not name the backend the device was
	// connected with, so a socket to some other export cannot be slipped in.
	if backend != "" {
		req.AddData(nl.NewRtAttr(attrBackend, nl.ZeroTerminated(backend)))
	}
	req.AddData(sockets(fd))
	if _, err := req.Execute(unix.NETLINK_GENERIC, 0); err != nil {
		return fmt.Errorf("NBD_CMD_RECONFIGURE of nbd%d: %w", index, err)
	}
	return nil
}

func nbdDisconnect(index int) error {
	req, err := request(cmdDisconnect)
	if err != nil {
		return err
	}
	req.AddData(nl.NewRtAttr(attrIndex, nl.Uint32Attr(uint32(index))))
	if _, err := req.Execute(unix.NETLINK_GENERIC, 0); err != nil {
		return fmt.Errorf("NBD_CMD_DISCONNECT of nbd%d: %w", index, err)
	}
	return nil
}

type deviceStatus struct {
	Index     int  `json:"index"`
	Connected bool `json:"connected"`
}

func nbdStatus(index int) ([]deviceStatus, error) {
	req, err := request(cmdStatus)
	if err != nil {
		return nil, err
	}
	if index >= 0 {
		req.AddData(nl.NewRtAttr(attrIndex, nl.Uint32Attr(uint32(index))))
	}
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return nil, fmt.Errorf("NBD_CMD_STATUS: %w", err)
	}
	out := []deviceStatus{}
	for _, m := range msgs {
		attrs, err := nl.ParseRouteAttr(m[nl.SizeofGenlmsg:])
		if err != nil {
			return nil, err
		}
		for _, list := range attrs {
			if list.Attr.Type&^unix.NLA_F_NESTED != attrDeviceList {
				continue
			}
			items, err := nl.ParseRouteAttr(list.Value)
			if err != nil {
				return nil, err
			}
			for _, item := range items {
				fields, err := nl.ParseRouteAttr(item.Value)
				if err != nil {
					return nil, err
				}
				d := deviceStatus{Index: -1}
				for _, f := range fields {
					switch f.Attr.Type {
					case deviceIndex:
						d.Index = int(binary.NativeEndian.Uint32(f.Value))
					case deviceConnected:
						d.Connected = len(f.Value) > 0 && f.Value[0] != 0
					}
				}
				out = append(out, d)
			}
		}
	}
	return out, nil
}
