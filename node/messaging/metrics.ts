import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export function createMessagingMetrics(registry: Registry) {
  const registers = [registry];
  return {
    sent: new Counter({
      name: 'cairn_messages_sent_total',
      help: 'Messages handed to this node to send (queued in the outbox)',
      registers,
    }),
    delivered: new Counter({
      name: 'cairn_messages_delivered_total',
      help: "Sent messages whose recipient's signed receipt arrived",
      registers,
    }),
    received: new Counter({
      name: 'cairn_messages_received_total',
      help: 'Envelopes opened here, by outcome: new (released or held), duplicate (receipted again)',
      labelNames: ['outcome'],
      registers,
    }),
    rejected: new Counter({
      name: 'cairn_messages_rejected_total',
      help: 'Envelopes, key records and receipts refused, by reason',
      labelNames: ['reason'],
      registers,
    }),
    attempts: new Counter({
      name: 'cairn_messages_attempts_total',
      help: 'Delivery attempts from the outbox, by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    pending: new Gauge({
      name: 'cairn_messages_outbox_pending',
      help: 'Messages in the outbox waiting for a receipt',
      registers,
    }),
    deposited: new Counter({
      name: 'cairn_messages_deposited_total',
      help: 'Messages left with mailboxes while their recipient was unreachable, by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    fetched: new Counter({
      name: 'cairn_messages_fetched_total',
      help: 'Envelopes fetched from mailboxes',
      registers,
    }),
    mailboxItems: new Gauge({
      name: 'cairn_mailbox_items',
      help: 'Envelopes this mailbox holds for others',
      registers,
    }),
    arrivalCommits: new Counter({
      name: 'cairn_messages_arrival_commits_total',
      help: 'Transactions that stored arrivals (a burst of arrivals shares one)',
      registers,
    }),
    latency: new Histogram({
      name: 'cairn_message_delivery_seconds',
      help: 'From send to receipt',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300, 3600],
      registers,
    }),
  };
}
export type MessagingMetrics = ReturnType<typeof createMessagingMetrics>;
