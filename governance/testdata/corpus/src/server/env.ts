const key = process.env.STRIPE_SECRET_KEY
const password = process.env.DB_PASSWORD ?? ''
export const config = { key, password, apiKey: "<your-api-key>", secret: "${SECRET_KEY}" }
