/**
 * pyre-nexus: pyre.nexus for Node.
 * - ipc: a dispatcher running inside Node's event loop, non-blocking channels owned by a Rust
 *   core, and marshalers speaking pyre's framing;
 * - nexus, the service side: Peer, Node, Service and Server, with a signal-driven life cycle;
 * - nexus, the process side: Task, Pool, Crew and the Fork and Threads recruiters.
 *
 * @module pyre-nexus
 */

export {
  AddressInUseError,
  AlreadyWatchedError,
  AlreadyWatchingError,
  BadAddressError,
  BadPayloadError,
  BufferTooSmallError,
  ChannelClosedError,
  ChannelFullError,
  ConnectionResetError,
  DispatcherClosedError,
  FrameTooLargeError,
  InternalError,
  IoError,
  NeedsResolvingError,
  NexusError,
  NotASocketError,
  NotSharedMemoryError,
  RecoverableError,
  TruncatedFrameError,
  UnsupportedPlatformError,
  WrongKindError,
} from './errors.js';
export { adopt, Channel, type PortOptions, parseAddress, pipe, port, resolveAddress, tcp } from './ipc/channel.js';
export {
  type AlarmHandler,
  type ChildOptions,
  Dispatcher,
  type DispatcherOptions,
  type Handler,
  type HandlerId,
} from './ipc/dispatcher.js';
export { HybridMarshaler, JsonMarshaler, type Marshaler, NOTHING, V8Marshaler } from './ipc/marshaler.js';
export type { FailureAction, FailurePolicy, NodeConfig, ServiceSpec } from './nexus/config.js';
export {
  CrewStatus,
  CrewStatus as crewcodes,
  Task,
  Task as task,
  TaskStatus,
  TaskStatus as taskcodes,
  TaskTimeoutError,
  WorkerLostError,
} from './nexus/crew/crossing.js';
export { Member, type MemberHandle } from './nexus/crew/member.js';
export { Crew, type WorkOptions } from './nexus/crew/work.js';
export { Fork, fork } from './nexus/fork.js';
export { journal, type LogChannel, type LogDevice, type LogEntry, type Severity } from './nexus/journal.js';
// pyre's lowercase names, for code that reads like pyre's.
export {
  Nexus,
  Nexus as nexus,
  Node,
  Node as node,
  type NodeOptions,
  type ReloadReport,
  type ServiceFailure,
  type ServiceMaker,
  type SignalHandler,
} from './nexus/node.js';
export type { MemberOutput, OutputListener, OutputSource, OutputStream } from './nexus/output.js';
export { Asynchronous, Asynchronous as asynchronous, Peer, type PeerOptions, peer } from './nexus/peer.js';
export type { Counts } from './nexus/pool/jobs.js';
export type { CloseOptions, PoolOptions, RunOptions } from './nexus/pool/options.js';
export { Pool, type PoolEvents, type PoolListener, pool, type ResultOf, type TaskEvent } from './nexus/pool/pool.js';
export { type Outcome, Workplan, type WorkplanReport } from './nexus/pool/workplan.js';
export type { Implementation, Protocol } from './nexus/protocol.js';
export type { RecruiterOptions } from './nexus/recruiting.js';
export { Server, Server as server, type ServerOptions } from './nexus/server.js';
export { Service, Service as service } from './nexus/service.js';
export { Recruiter, Recruiter as recruiter, Team, Team as team } from './nexus/team.js';
export { Threads, threads } from './nexus/threads.js';
export { Timer } from './nexus/timer.js';
