//! The client's socket: one `SOCK_SEQPACKET` packet per message, replies carrying pipe read
//! ends as `SCM_RIGHTS`. It exists so the rest of the server never touches a file descriptor
//! call: everything goes through rustix's safe wrappers, driven by tokio's [`AsyncFd`] so a
//! waiting server costs nothing and notices at once when the client goes away.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketType,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::ProxyError;

/// The largest message either side sends, as skopeo's proxy defines it: payloads go through
/// pipes, so a JSON message never needs more.
pub const MAX_MESSAGE: usize = 32 * 1024;

/// What the client sent.
pub(crate) enum Packet {
    /// One message.
    Message(Vec<u8>),
    /// A packet larger than [`MAX_MESSAGE`], cut by the kernel (the rest is lost).
    Oversized,
    /// The client closed its end.
    Closed,
}

/// The server's end of the client's socket.
pub(crate) struct Channel {
    fd: AsyncFd<OwnedFd>,
}

impl Channel {
    /// Takes the socket: it must be a `SOCK_SEQPACKET` socket (a stream socket would merge
    /// messages, a datagram one would lose the peer's hang-up). It is made non-blocking.
    pub(crate) fn new(fd: OwnedFd) -> Result<Channel, ProxyError> {
        let kind = rustix::net::sockopt::socket_type(&fd)
            .map_err(|e| ProxyError::NotASocket { source: e.into() })?;
        if kind != SocketType::SEQPACKET {
            return Err(ProxyError::WrongSocketType {
                kind: format!("{kind:?}"),
            });
        }
        rustix::io::ioctl_fionbio(&fd, true)
            .map_err(|e| ProxyError::Socket { source: e.into() })?;
        // tokio deprecated this constructor because a type that merely has a raw descriptor
        // could close it under the reactor; an `OwnedFd` owned by the `AsyncFd` cannot, which
        // is the guarantee the unsafe `register_with_interest` asks for.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(fd, Interest::READABLE | Interest::WRITABLE)
            .map_err(|source| ProxyError::Socket { source })?;
        Ok(Channel { fd })
    }

    /// The next packet. File descriptors a client sends along are closed: no request takes
    /// any.
    pub(crate) async fn recv(&self) -> Result<Packet, ProxyError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|source| ProxyError::Socket { source })?;
            let got = guard.try_io(|fd| {
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
                let mut ancillary = RecvAncillaryBuffer::new(&mut space);
                let mut iov = [IoSliceMut::new(&mut buf)];
                let r = rustix::net::recvmsg(
                    fd.get_ref(),
                    &mut iov,
                    &mut ancillary,
                    RecvFlags::CMSG_CLOEXEC,
                )
                .map_err(std::io::Error::from)?;
                // Dropping the drained messages closes any descriptor they carried.
                ancillary.drain().for_each(drop);
                Ok(r)
            });
            match got {
                Ok(Ok(r)) => {
                    if r.flags.contains(ReturnFlags::TRUNC) {
                        return Ok(Packet::Oversized);
                    }
                    if r.bytes == 0 {
                        // A sequenced-packet socket reads 0 bytes only at the peer's close (an
                        // empty packet is no request either).
                        return Ok(Packet::Closed);
                    }
                    buf.truncate(r.bytes);
                    return Ok(Packet::Message(buf));
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(Packet::Closed);
                }
                Ok(Err(source)) => return Err(ProxyError::Socket { source }),
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one reply with these descriptors attached (the receiver gets its own copies).
    pub(crate) async fn send(
        &self,
        message: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), ProxyError> {
        if message.len() > MAX_MESSAGE {
            return Err(ProxyError::MessageTooLarge { limit: MAX_MESSAGE });
        }
        loop {
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(|source| ProxyError::Socket { source })?;
            let sent = guard.try_io(|fd| {
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
                let mut ancillary = SendAncillaryBuffer::new(&mut space);
                if !fds.is_empty() && !ancillary.push(SendAncillaryMessage::ScmRights(fds)) {
                    return Err(std::io::Error::other(
                        "too many file descriptors for one reply",
                    ));
                }
                let iov = [IoSlice::new(message)];
                rustix::net::sendmsg(fd.get_ref(), &iov, &mut ancillary, SendFlags::NOSIGNAL)
                    .map_err(std::io::Error::from)
            });
            match sent {
                Ok(Ok(n)) if n == message.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(ProxyError::Socket {
                        source: std::io::Error::other(format!(
                            "sent {n} of a {}-byte reply",
                            message.len()
                        )),
                    });
                }
                Ok(Err(source)) => return Err(ProxyError::Socket { source }),
                Err(_would_block) => continue,
            }
        }
    }

    /// Resolves when the client has closed its end (or the socket failed), and never while it
    /// is only quiet. A request the client sent meanwhile stays queued for [`Channel::recv`].
    pub(crate) async fn closed(&self) {
        loop {
            let Ok(mut guard) = self.fd.ready(Interest::READABLE).await else {
                return;
            };
            let ready = guard.ready();
            if ready.is_read_closed() || ready.is_error() {
                return;
            }
            // Readable with data: a request waits. Its arrival says nothing of a hang-up, so
            // keep waiting for one; the readiness is only cleared when no packet is queued.
            let mut probe = [0u8; 1];
            let peek = rustix::net::recv(
                self.fd.get_ref(),
                &mut probe[..],
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            );
            match peek {
                Ok((_, 0)) => return,
                Ok(_) => {
                    // A request is queued; the hang-up (if any) comes with RDHUP later.
                    // Wait for the next readiness change without spinning.
                    guard.clear_ready();
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                Err(_) => return,
            }
        }
    }
}
