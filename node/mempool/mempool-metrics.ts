import { Counter, Gauge, type Registry } from 'prom-client';
import type { Mempool } from './mempool.ts';

/**
 * The mempool's flood and reorg figures in Prometheus: admissions by outcome (refusals by quota
 * and by invalid reason included), and what became of every entry a reorg returned.
 */
export function createMempoolMetrics(registry: Registry, mempool: Mempool) {
  const admissions = new Counter({
    name: 'cairn_mempool_admissions_total',
    help: 'Entries offered to the mempool by outcome (added, duplicate, full:<quota>, invalid:<reason>)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const c = mempool.returned.counts;
  new Gauge({
    name: 'cairn_mempool_returned_entries',
    help: 'Entries returned by reorgs, by fate: total seen, readmitted, mined, invalid, dropped (hold over its bound), held now',
    labelNames: ['fate'],
    registers: [registry],
    collect() {
      this.set({ fate: 'total' }, mempool.returnedTotal);
      this.set({ fate: 'readmitted' }, c.readmitted);
      this.set({ fate: 'mined' }, c.mined);
      this.set({ fate: 'invalid' }, c.invalid);
      this.set({ fate: 'dropped' }, c.dropped);
      this.set({ fate: 'held' }, mempool.returned.size);
    },
  });
  return { admissions };
}
