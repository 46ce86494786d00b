import { createClient } from '@supabase/supabase-js'

export async function GET() {
  const supabase = createClient( // want GOV-002
    process.env.NEXT_PUBLIC_SUPABASE_URL!,
    process.env.SUPABASE_SERVICE_ROLE_KEY!,
  )
  return Response.json(await supabase.from('reports').select())
}
