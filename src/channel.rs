//! Channels as JavaScript holds them, and the functions that make them: `pipe`, `port`,
//! `connect`, `adopt`.
//!
//! A channel crosses as an opaque handle (an N-API external, see `handle.rs`) that the functions
//! below take as their first argument. They are functions rather than methods of a class because
//! a method finds its object through `napi_unwrap`, a private-property lookup in V8 that cost
//! about 790 instructions a call, more than the rest of a receive (callgrind, ping-pong: 15.6k
//! per round trip, five calls). Reading an external's key costs about 100 instructions.
//!
//! The calls made per message have glue written by hand (`glue.rs`): napi-rs 3's generated glue
//! cost them about 1,000 instructions a call more than napi-rs 2's had (`channelSendFrame` 637
//! -> 1,661 a call, callgrind, napi 3.16), and ours brings them back to 687.

use crate::error::{throw, OrThrow};
use crate::glue::{self, Args};
use crate::handle::ChannelHandle;
use crate::status;
use napi::bindgen_prelude::*;
use napi::sys::{napi_callback_info, napi_env, napi_value};
use napi_derive::napi;
use pyre_nexus_core::address::{Family, Parsed};
use pyre_nexus_core::{self as core, frame, Address, ReadOutcome, Recv, RecvInto};

fn address(env: &Env, text: &str) -> Result<Address> {
    text.parse::<Address>().or_throw(env)
}

/// The largest frame a channel accepts unless told otherwise (`maxFrame`, 64 MiB).
#[napi]
pub const DEFAULT_MAX_FRAME: u32 = frame::DEFAULT_MAX_FRAME;

/// Payloads at least this long arrive in memory of their own, kept for later ones once collected
/// (see `trimLargeFrameSpares`).
#[napi]
pub const LARGE_PAYLOAD: u32 = (frame::LARGE - frame::HEADER) as u32;

/// The file descriptor, or null once closed.
#[napi(catch_unwind)]
pub fn channel_fd(channel: ChannelHandle) -> Option<i32> {
    channel.borrow().fd()
}

/// `stream`, `tcp`, `listener` or `closed`.
#[napi(catch_unwind)]
pub fn channel_kind(channel: ChannelHandle) -> &'static str {
    channel.borrow().kind()
}

/// Whether this side has closed the channel.
#[napi(catch_unwind)]
pub fn channel_closed(channel: ChannelHandle) -> bool {
    channel.borrow().is_closed()
}

/// The address bound, in pyre's notation (`ip4:127.0.0.1:5000`), if any.
#[napi(catch_unwind)]
pub fn channel_local_address(channel: ChannelHandle) -> Option<String> {
    channel.borrow().local_address().map(|a| a.to_string())
}

/// The peer's address, if known.
#[napi(catch_unwind)]
pub fn channel_peer_address(channel: ChannelHandle) -> Option<String> {
    channel.borrow().peer_address().map(|a| a.to_string())
}

/// Bytes accepted by `write`/`sendFrame` that the kernel has not taken yet.
#[napi(catch_unwind)]
pub fn channel_pending_output(channel: ChannelHandle) -> u32 {
    channel.borrow().pending_output() as u32
}

/// Sets the largest frame `recvFrame` accepts.
#[napi(catch_unwind)]
pub fn channel_set_max_frame(channel: ChannelHandle, max: u32) {
    channel.borrow_mut().set_max_frame(max);
}

/// Sets the bound on unsent output.
#[napi(catch_unwind)]
pub fn channel_set_output_bound(channel: ChannelHandle, bound: u32) {
    channel.borrow_mut().set_output_bound(bound as usize);
}

/// The calls made once or more per message, exported with glue of our own (see `glue.rs`); the
/// generated `native.d.ts` declares their types from `src/native-header.d.ts`.
#[napi(module_exports)]
pub fn export_per_message_calls(exports: Object, env: Env) -> Result<()> {
    glue::export(
        &env,
        &exports,
        &[
            (c"channelAtEnd", channel_at_end),
            (c"channelRead", channel_read),
            (c"channelWrite", channel_write),
            (c"channelSendFrame", channel_send_frame),
            (c"channelRecvFrames", channel_recv_frames),
            (c"channelRecvFrameInto", channel_recv_frame_into),
        ],
    )
}

/// `channelAtEnd(channel)`: whether the peer has closed its end (an end of file was read).
///
/// # Safety
/// N-API calls it, with the `env` and `info` of a call on this thread.
unsafe extern "C" fn channel_at_end(env: napi_env, info: napi_callback_info) -> napi_value {
    let env = Env::from_raw(env);
    // SAFETY: N-API calls this function with the `env` and `info` of the call.
    unsafe {
        glue::call(&env, info, |args: Args<1>| {
            Ok(args.channel(0)?.borrow().at_end())
        })
    }
}

/// `channelRead(channel, buffer)`: reads into `buffer`: the number of bytes read, 0 at end of
/// file, null if nothing is there. The input state word says what the next read will find.
///
/// # Safety
/// N-API calls it, with the `env` and `info` of a call on this thread.
unsafe extern "C" fn channel_read(env: napi_env, info: napi_callback_info) -> napi_value {
    let env = Env::from_raw(env);
    // SAFETY: as above.
    unsafe {
        glue::call(&env, info, |args: Args<2>| {
            let channel = args.channel(0)?;
            let mut buffer = args.buffer(1)?;
            let mut channel = channel.borrow_mut();
            status::before_input(&mut channel);
            let outcome = channel.read(&mut buffer).or_throw(&env)?;
            status::publish_input(&channel);
            match outcome {
                ReadOutcome::Data(n) => Ok(Some(n as u32)),
                ReadOutcome::Eof => Ok(Some(0)),
                ReadOutcome::WouldBlock => Ok(None),
            }
        })
    }
}

/// `channelWrite(channel, buffer)`: writes what the kernel takes and buffers the rest up to the
/// bound; returns bytes accepted. The pending output word says what is left to flush.
///
/// # Safety
/// N-API calls it, with the `env` and `info` of a call on this thread.
unsafe extern "C" fn channel_write(env: napi_env, info: napi_callback_info) -> napi_value {
    let env = Env::from_raw(env);
    // SAFETY: as above.
    unsafe {
        glue::call(&env, info, |args: Args<2>| {
            let channel = args.channel(0)?;
            let buffer = args.buffer(1)?;
            let mut channel = channel.borrow_mut();
            let accepted = channel.write(&buffer).or_throw(&env)?;
            status::publish_pending(&channel);
            Ok(accepted as u32)
        })
    }
}

/// `channelSendFrame(channel, payload)`: sends `payload` as one frame (4-byte little-endian
/// length, then the bytes). The pending output word says what is left to flush.
///
/// # Safety
/// N-API calls it, with the `env` and `info` of a call on this thread.
unsafe extern "C" fn channel_send_frame(env: napi_env, info: napi_callback_info) -> napi_value {
    let env = Env::from_raw(env);
    // SAFETY: as above.
    unsafe {
        glue::call(&env, info, |args: Args<2>| {
            let channel = args.channel(0)?;
            let payload = args.buffer(1)?;
            let mut channel = channel.borrow_mut();
            channel.send_frame(&payload).or_throw(&env)?;
            status::publish_pending(&channel);
            Ok(())
        })
    }
}

/// `channelRecvFrames(channel, slab, offset)`: copies the next whole frame into `slab` from
/// `offset` on, and after it every whole frame already buffered that fits (lent: see
/// `Channel::lend_frames`), each as a record, and returns where the records end; -1 if no frame
/// has arrived whole. A first payload larger than the room left comes back as a Buffer of its
/// own, alone. The input state word says what the next receive will find. One call brings what
/// a loop of calls would, and the slab spares a Buffer per frame, which cost more than the rest
/// of a receive.
///
/// A record starts 8-byte aligned: 4 bytes left alone, the frame's 4-byte little-endian length,
/// then the payload (so payloads are aligned too, as Node's pooled Buffers are).
///
/// # Safety
/// N-API calls it, with the `env` and `info` of a call on this thread.
unsafe extern "C" fn channel_recv_frames(env: napi_env, info: napi_callback_info) -> napi_value {
    let env = Env::from_raw(env);
    // SAFETY: as above.
    unsafe {
        glue::call(&env, info, |args: Args<3>| {
            let channel = args.channel(0)?;
            let mut slab = args.buffer(1)?;
            let offset = (args.u32(2)? as usize).min(slab.len());
            let mut channel = channel.borrow_mut();
            status::before_input(&mut channel);
            let got = match channel.recv_frame().or_throw(&env)? {
                Recv::Frame(payload) => match record(&mut slab, offset, payload) {
                    // The frames behind it that fit go too, lent: the core keeps them until
                    // JavaScript says how many it handed out (see `status::before_input`).
                    Some(mut end) => {
                        channel.lend_frames(|next| {
                            record(&mut slab, end, next)
                                .map(|after| end = after)
                                .is_some()
                        });
                        Either::A(end as i32)
                    }
                    None => Either::B(BufferSlice::copy_from(&env, payload)?),
                },
                Recv::Owned(frame) => Either::B(owned_buffer(&env, frame)?),
                Recv::Pending | Recv::Eof => Either::A(-1),
            };
            status::publish_input(&channel);
            Ok(got)
        })
    }
}

/// Bytes before a record's payload: 4 left alone, then the frame's length.
const RECORD_HEAD: usize = 8;

/// Writes a record of `payload` into `slab` at `at` (rounded up to 8), and returns where the next
/// one may start; None if it does not fit.
fn record(slab: &mut [u8], at: usize, payload: &[u8]) -> Option<usize> {
    let at = at.next_multiple_of(8);
    let start = at.checked_add(RECORD_HEAD)?;
    let end = start.checked_add(payload.len())?;
    if end > slab.len() {
        return None;
    }
    slab[at + 4..start].copy_from_slice(&frame::header(payload.len()));
    slab[start..end].copy_from_slice(payload);
    Some(end.next_multiple_of(8).min(slab.len()))
}

/// `channelRecvFrameInto(channel, buffer, offset)`: copies the next whole frame's payload into
/// `buffer` at `offset` and returns its length, or -1 if no frame has arrived whole yet. A
/// payload that does not fit stays queued, and the error says how long it is. Nothing is
/// allocated for JavaScript. The input state word says what the next receive will find.
///
/// # Safety
/// N-API calls it, with the `env` and `info` of a call on this thread.
unsafe extern "C" fn channel_recv_frame_into(
    env: napi_env,
    info: napi_callback_info,
) -> napi_value {
    let env = Env::from_raw(env);
    // SAFETY: as above.
    unsafe {
        glue::call(&env, info, |args: Args<3>| {
            let channel = args.channel(0)?;
            let mut buffer = args.buffer(1)?;
            let offset = (args.u32(2)? as usize).min(buffer.len());
            let mut channel = channel.borrow_mut();
            status::before_input(&mut channel);
            let received = channel
                .recv_frame_into(&mut buffer[offset..])
                .or_throw(&env)?;
            status::publish_input(&channel);
            match received {
                RecvInto::Copied(len) => Ok(len as i64),
                RecvInto::Pending | RecvInto::Eof => Ok(-1),
            }
        })
    }
}

/// A Buffer over a large frame's payload, without a copy; its memory goes back to the frame
/// reader's spares once JavaScript lets go of it.
fn owned_buffer(env: &Env, frame: frame::OwnedFrame) -> Result<BufferSlice<'_>> {
    let len = frame.payload().len();
    let mut whole = frame.into_buffer();
    // The payload follows the header; the Vec's heap memory does not move with the Vec.
    let payload = whole[frame::HEADER..].as_mut_ptr();
    // SAFETY: `payload` points at `len` bytes owned by `whole`, which the finalizer keeps alive
    // until V8 has let go of the Buffer.
    unsafe {
        BufferSlice::from_external(env, payload, len, whole, |_, whole| frame::recycle(whole))
    }
}

/// Lets this thread's large-frame spares go if no large frame has come for a while; true while
/// some are still kept (ask again later).
#[napi(catch_unwind)]
pub fn trim_large_frame_spares() -> bool {
    frame::trim_spares()
}

/// Takes the next waiting connection of a listening channel, or null if none is waiting.
#[napi(catch_unwind)]
pub fn channel_accept(env: Env, channel: ChannelHandle) -> Result<Option<ChannelHandle>> {
    Ok(channel
        .borrow_mut()
        .accept()
        .or_throw(&env)?
        .map(ChannelHandle::new))
}

/// Closes the channel; accepted output is still delivered if a dispatcher watches it.
#[napi(catch_unwind)]
pub fn channel_close(channel: ChannelHandle) {
    channel.borrow_mut().close();
}

/// Closes the channel at once, dropping output the peer has not taken yet.
#[napi(catch_unwind)]
pub fn channel_abort(channel: ChannelHandle) {
    channel.borrow_mut().abort();
}

/// A connected pair of channels `[parent, child]`.
#[napi(catch_unwind)]
pub fn pipe(env: Env) -> Result<Vec<ChannelHandle>> {
    let (a, b) = core::pipe().or_throw(&env)?;
    Ok(vec![ChannelHandle::new(a), ChannelHandle::new(b)])
}

/// A listening port; a taken Internet address falls back to an ephemeral port.
#[napi(catch_unwind)]
pub fn port(env: Env, address_text: String) -> Result<ChannelHandle> {
    let address = address(&env, &address_text)?;
    Ok(ChannelHandle::new(core::port(&address).or_throw(&env)?))
}

/// A connection to an address, begun without blocking.
#[napi(catch_unwind)]
pub fn connect(env: Env, address_text: String) -> Result<ChannelHandle> {
    let address = address(&env, &address_text)?;
    Ok(ChannelHandle::new(core::connect(&address).or_throw(&env)?))
}

/// Takes over an inherited socket descriptor.
#[napi(catch_unwind)]
pub fn adopt(env: Env, fd: i32) -> Result<ChannelHandle> {
    if fd < 0 {
        return Err(throw(&env, &core::Error::NotASocket { fd }));
    }
    Ok(ChannelHandle::new(core::adopt(fd).or_throw(&env)?))
}

/// Parses an address and gives it back in canonical form, or throws naming the bad part.
#[napi(catch_unwind)]
pub fn parse_address(env: Env, address_text: String) -> Result<String> {
    Ok(address(&env, &address_text)?.to_string())
}

/// The host name of an address, for a resolver: the family its prefix asks for (4, 6, or 0 for
/// either), the name and the port.
#[napi(object, object_from_js = false)]
pub struct HostName {
    pub family: u32,
    pub host: String,
    pub port: u32,
}

/// The host name an address must have resolved before it can be used, or null when it needs no
/// lookup (an IP address, `localhost`, a Unix-domain path); throws naming the bad part.
#[napi(catch_unwind)]
pub fn address_host_name(env: Env, address_text: String) -> Result<Option<HostName>> {
    Ok(match Address::parse(&address_text).or_throw(&env)? {
        Parsed::Address(_) => None,
        Parsed::HostName(named) => Some(HostName {
            family: match named.family {
                Family::Any => 0,
                Family::V4 => 4,
                Family::V6 => 6,
            },
            host: named.host,
            port: u32::from(named.port),
        }),
    })
}
