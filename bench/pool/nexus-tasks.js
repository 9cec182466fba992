// The pyre-nexus tasks of the pool benchmark: the shared task bodies as Task classes, exported
// from the module their `static module` names, as workers import them from there.
import { Task } from '../../dist/task.js';
import { sleep, spin, trivial } from './tasks.js';

export class Trivial extends Task {
  static module = import.meta.url;
  constructor(n) {
    super();
    this.n = n;
  }
  execute() {
    return trivial(this.n);
  }
}

export class Spin extends Task {
  static module = import.meta.url;
  constructor(ms) {
    super();
    this.ms = ms;
  }
  execute() {
    return spin(this.ms);
  }
}

export class Sleep extends Task {
  static module = import.meta.url;
  constructor(ms) {
    super();
    this.ms = ms;
  }
  execute() {
    return sleep(this.ms);
  }
}
