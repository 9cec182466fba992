// One team for the crossings count: `node team.js <mode> <tasks>` runs <tasks> trivial tasks
// on a pool of one Fork member, one at a time (`sequential`: submit, await, next) or all at
// once (`burst`), then closes the pool.
import { Pool } from '../../dist/index.js';
import { Trivial } from '../pool/nexus-tasks.js';

const [mode, n] = [process.argv[2], Number(process.argv[3])];
const pool = new Pool({ size: 1 });
if (mode === 'sequential') {
  for (let i = 0; i < n; i++) await pool.submit(new Trivial(i));
} else {
  await Promise.all(Array.from({ length: n }, (_, i) => pool.submit(new Trivial(i))));
}
await pool.close();
