import Stripe from 'stripe'

const stripe = new Stripe("@@STRIPE_LIVE@@") // want GOV-001/code

export async function charge(amount: number) {
  // TODO(ai): handle declined cards // want AI-002
  return stripe.charges.create({ amount, currency: 'eur' })
}
