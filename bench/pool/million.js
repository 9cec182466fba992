// A workplan of trivial tasks for `nexus run`, to show that the command's memory follows the
// pending bound, not the workplan:
//   /usr/bin/time -f '%M KB' node dist/cli.js run bench/pool/million.js 1000000 --team.size=2 --progress=off
import { Task } from '../../dist/task.js';

export class Id extends Task {
  static module = import.meta.url;
  constructor(n) {
    super();
    this.n = n;
  }
  execute() {
    return this.n;
  }
}

/** `count` tasks (1,000,000 unless given), made as they are read. */
export function* workplan(count = '1000000') {
  for (let i = 0; i < Number(count); i++) yield new Id(i);
}
