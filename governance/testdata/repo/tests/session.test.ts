import { describe, it } from 'vitest'

// A token of the test project, kept in the test: still a finding, classed as test.
const accessToken = '@@JWT_USER@@'

describe('session', () => {
  it('refreshes', () => refresh(accessToken))
})
