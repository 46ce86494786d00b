import Stripe from 'stripe'

// Test mode uses sk_test_... keys from the dashboard; never commit a live one.
const stripe = new Stripe("@@STRIPE_LIVE@@")

export async function charge(amount: number) {
  console.log('charging', amount)
  return stripe.paymentIntents.create({ amount, currency: 'eur' })
}
