/**
 * The inbox: reads what a member sends and hands each checked message to the team. A member
 * that sends what the crew protocol does not allow is lost for it; one whose channel ends (or is
 * reset, when it died with tasks unread in its socket) has ended.
 */
import { ConnectionResetError } from '../../errors.js';
import { NOTHING } from '../../ipc/marshaler.js';
import type { Member } from '../crew/member.js';
import { checkMemberMessage, READY, REPORTS, RETURNED, receive, STARTED } from '../crew/protocol.js';

/** What the team does with each message. */
export interface Mailroom {
  ready(member: Member): void;
  /** A frame of reports (flat: REPORT_FIELDS a report), checked whole. */
  reports(member: Member, reports: unknown[]): void;
  started(member: Member, id: number): void;
  returned(member: Member, ids: number[]): void;
  /** The member's channel ended: it died, or exited. */
  ended(member: Member): void;
  /** The member broke the protocol. */
  broke(member: Member, why: string): void;
}

/**
 * Reads every whole message waiting from `member`. False once the member is no longer read
 * (retired, ended, or broke the protocol): its dispatcher handler is then dropped.
 */
export function readMember(member: Member, mailroom: Mailroom): boolean {
  if (member.state === 'retired') return false;
  try {
    for (let message = receive(member.channel); message !== NOTHING; message = receive(member.channel)) {
      const checked = checkMemberMessage(message);
      if (checked.kind === REPORTS) mailroom.reports(member, checked.reports);
      else if (checked.kind === STARTED) mailroom.started(member, checked.id);
      else if (checked.kind === RETURNED) {
        // Every CANCEL is answered once: an answer to none would lift a fence too early.
        if (member.cancelsAnswered >= member.cancelsSent) throw new Error('a RETURNED that answers no CANCEL');
        mailroom.returned(member, checked.ids);
      } else if (checked.kind === READY && member.state === 'registered') mailroom.ready(member);
      else if (checked.kind === READY) throw new Error('a READY from a member already ready');
    }
  } catch (error) {
    // A member that died with tasks unread in its socket resets the connection: it ended, like
    // one that died with none; anything else it sent that does not decode breaks the protocol.
    if (error instanceof ConnectionResetError) mailroom.ended(member);
    else mailroom.broke(member, `broke the crew protocol (${(error as Error).message})`);
    return false;
  }
  if (member.channel.atEnd) {
    mailroom.ended(member);
    return false;
  }
  // A report may have cost the member its life (it said it is damaged).
  return (member.state as Member['state']) !== 'retired';
}
