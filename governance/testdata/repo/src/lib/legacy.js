// Rules of the old pricing engine.
export function discount(order) {
  if (order) {
    for (const line of order.lines) {
      if (line.qty > 10) {
        while (line.pending) {
          if (line.vip) {
            line.price *= 0.8
          }
          line.pending--
        }
      }
    }
  }
  // TODO(ai): apply the coupon rules here
  return order
}

// TODO: drop this once v2 pricing ships (PRICE-12)
export const version = 1
