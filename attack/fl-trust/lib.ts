/**
 * Attack harness for issue #16 (attack review): real FlParticipants with real PrivacyGates on
 * real corpus slices, driven by a hostile coordinator the tests write. The rig itself lives in
 * node/testing/fl-round-rig.ts, which the tests moved next to the code once fixed use too.
 */
export * from '../../node/testing/fl-round-rig.ts';
