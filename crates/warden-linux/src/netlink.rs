//! A small synchronous rtnetlink client: just the requests the worker runtime makes.
//!
//! Synchronous on purpose: the helper is a single-threaded process and each request is one
//! send + one ack (tens of microseconds); an async runtime would cost more than the work.
//! Messages are built with `netlink-packet-route`, not by hand.

use std::net::Ipv4Addr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};

/// One NETLINK_ROUTE socket in the network namespace of the thread that opened it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    pub fn open() -> Result<Self> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::sys("open a netlink socket", e))?;
        socket
            .bind(&SocketAddr::new(0, 0))
            .map_err(|e| Error::sys("bind a netlink socket", e))?;
        // Extended acks make the kernel say more when it refuses; harmless if unsupported.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; 16384],
        })
    }

    /// Sends one request and waits for its ack; returns the raw errno on refusal.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> std::result::Result<Option<RouteNetlinkMessage>, i32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket
            .send(&out, 0)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let mut reply = None;
        loop {
            let mut space = &mut self.buf[..];
            let n = self
                .socket
                .recv(&mut space, 0)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
            let n = n.min(self.buf.len());
            let mut offset = 0;
            while offset < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..n])
                    .map_err(|_| libc::EBADMSG)?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(reply),
                                Some(code) => Err(-code.get()),
                            };
                        }
                        NetlinkPayload::InnerMessage(m) => {
                            reply = Some(m);
                            if flags & NLM_F_ACK == 0 {
                                return Ok(reply);
                            }
                        }
                        NetlinkPayload::Done(_) => return Ok(reply),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
            }
        }
    }

    fn checked(
        &mut self,
        op: impl FnOnce() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<()> {
        self.request(msg, flags | NLM_F_ACK)
            .map(|_| ())
            .map_err(|errno| Error::Netlink { op: op(), errno })
    }

    /// The index of the link called `name`, or `None` when there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(Some(RouteNetlinkMessage::NewLink(link))) => Ok(Some(link.header.index)),
            Ok(_) => Ok(None),
            Err(libc::ENODEV) => Ok(None),
            Err(errno) => Err(Error::Netlink {
                op: format!("look up link {name}"),
                errno,
            }),
        }
    }

    /// Creates a veth pair: `host` here, enslaved to `bridge_index` and up; `peer` created
    /// directly inside the network namespace of process `peer_pid` (no later move or rename).
    pub fn create_veth(
        &mut self,
        host: &str,
        bridge_index: u32,
        peer: &str,
        peer_pid: u32,
    ) -> Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg.attributes.push(LinkAttribute::NetNsPid(peer_pid));
        let mut msg = LinkMessage::default();
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::Controller(bridge_index));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.checked(
            || format!("create veth {host}/{peer} on bridge index {bridge_index}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Isolates a bridge port: isolated ports cannot talk to each other, only to
    /// non-isolated ports (the bridge itself, i.e. the gateway).
    pub fn set_port_isolated(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(
                true,
            )])),
        ]));
        self.checked(
            || format!("isolate bridge port index {index}"),
            RouteNetlinkMessage::NewLink(msg),
            0,
        )
    }

    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.checked(
            || format!("set link index {index} up"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
    }

    pub fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        self.checked(
            || format!("add address {addr}/{prefix} to link index {index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    pub fn add_default_route(&mut self, gateway: Ipv4Addr, index: u32) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.checked(
            || format!("add default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Deletes a link (and, for a veth, its peer). Missing links are not an error.
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), NLM_F_ACK) {
            Ok(_) | Err(libc::ENODEV) => Ok(()),
            Err(errno) => Err(Error::Netlink {
                op: format!("delete link index {index}"),
                errno,
            }),
        }
    }
}
