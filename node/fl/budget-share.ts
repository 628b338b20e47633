/**
 * What fraction of a privacy budget an RDP curve uses up: the currency in which the ledger caps
 * what rounds may spend without reaching their commit, and prices the work a round asks for.
 *
 * ε itself is the wrong currency for that: it is concave in what it composes (the default plan's
 * first round alone costs ε 0.648 of 3, its twentieth 0.082), so a round's ε says more about how
 * early it came than about how much of the budget it took. RDP composes by addition at every
 * order, so at each order α the budget ε_B holds a capacity ρ_B(α) = ε_B − c(α), where c(α) is
 * the conversion's offset (Balle et al., as in rdp-accountant.ts privacySpent). A ledger within
 * its budget is under capacity at some order, so the fraction of the budget used is
 *
 *   share(ρ) = min over α with ρ_B(α) > 0 of ρ(α) / ρ_B(α)
 *
 * which is 1 exactly when the budget is spent and scales with the rounds: each of the default
 * plan's 20 rounds (q 0.3, z 4.654, 5 steps, at ε 3, δ 1e-5) has share 0.0500, the e2e plan's
 * 10-step rounds 0.1000.
 */

/** ε(ρ) at order α is ρ + conversionOffset(α, δ). */
const conversionOffset = (order: number, delta: number): number =>
  -(Math.log(delta) + Math.log(order)) / (order - 1) + Math.log((order - 1) / order);

/** ρ_B(α) per order: the RDP the budget can absorb there (≤ 0 where it can absorb none). */
export function budgetCapacity(
  budgetEpsilon: number,
  delta: number,
  orders: readonly number[],
): Float64Array {
  return Float64Array.from(orders, (a) => budgetEpsilon - conversionOffset(a, delta));
}

/** The fraction of the budget `rdp` uses (∞ when the budget has capacity at no order: ε_B = 0). */
export function budgetShare(rdp: ArrayLike<number>, capacity: Float64Array): number {
  if (rdp.length !== capacity.length) throw new RangeError('one RDP value per order');
  let share = Infinity;
  for (let k = 0; k < capacity.length; k++) {
    const cap = capacity[k]!;
    if (!(cap > 0)) continue;
    const s = rdp[k]! / cap;
    if (s < share) share = s;
  }
  return share;
}
