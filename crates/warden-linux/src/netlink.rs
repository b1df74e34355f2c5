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
use std::os::fd::AsRawFd;

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
    ///
    /// Replies are read by hand (length, type, sequence, error code): only acks are expected,
    /// and a full parse of every message the kernel sends back costs more than the request.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> std::result::Result<(), i32> {
        const NLMSG_ERROR: u16 = 2;
        const NLMSG_DONE: u16 = 3;
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
        let u32_at =
            |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        loop {
            let mut space = &mut self.buf[..];
            let n = self
                .socket
                .recv(&mut space, 0)
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
            let buf = &self.buf[..n.min(self.buf.len())];
            let mut offset = 0;
            // nlmsghdr: u32 length, u16 type, u16 flags, u32 sequence, u32 port; then the body.
            while offset + 16 <= buf.len() {
                let len = u32_at(buf, offset) as usize;
                let kind = u16::from_ne_bytes([buf[offset + 4], buf[offset + 5]]);
                let seq = u32_at(buf, offset + 8);
                if len < 16 || offset + len > buf.len() {
                    return Err(libc::EBADMSG);
                }
                if seq == self.seq {
                    match kind {
                        NLMSG_ERROR if len >= 20 => {
                            let code = u32_at(buf, offset + 16) as i32;
                            return if code == 0 { Ok(()) } else { Err(-code) };
                        }
                        NLMSG_ERROR => return Err(libc::EBADMSG),
                        NLMSG_DONE => return Ok(()),
                        _ if flags & NLM_F_ACK == 0 => return Ok(()),
                        _ => {}
                    }
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
            .map_err(|errno| Error::Netlink { op: op(), errno })
    }

    /// The index of the link called `name` in this socket's network namespace, or `None` when
    /// there is none. `SIOCGIFINDEX` on the netlink socket itself (the kernel resolves it in the
    /// socket's namespace): no link dump to parse.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Ok(None);
        }
        // SAFETY: ifreq is plain data; zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFINDEX reads the name and writes the index into the ifreq we own.
        let r = unsafe { libc::ioctl(self.socket.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) };
        if r == 0 {
            // SAFETY: SIOCGIFINDEX filled the index member of the union.
            return Ok(Some(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32));
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENODEV) => Ok(None),
            errno => Err(Error::Netlink {
                op: format!("look up link {name}"),
                errno: errno.unwrap_or(libc::EIO),
            }),
        }
    }

    /// Creates a veth pair: `host` here, enslaved to `bridge_index` and up; `peer` created
    /// directly inside the network namespace of process `peer_pid` (no later move or rename), with
    /// hardware address `peer_mac` if given (else a random one).
    pub fn create_veth(
        &mut self,
        host: &str,
        bridge_index: u32,
        peer: &str,
        peer_pid: u32,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg.attributes.push(LinkAttribute::NetNsPid(peer_pid));
        if let Some(mac) = peer_mac {
            peer_msg
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
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
