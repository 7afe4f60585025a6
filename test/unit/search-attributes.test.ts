/** The search-attribute table in code and the one registered on the namespace are the same table. */
import { readSearchAttributes } from '../../scripts/lib/services';
import { SearchAttribute, SearchAttributeKey } from '../../common/search-attributes';

describe('search attributes', () => {
  it('temporal-config/search-attributes.json registers exactly the keys common/search-attributes.ts declares', () => {
    const registered = readSearchAttributes();
    const declared = Object.fromEntries(
      Object.values(SearchAttributeKey).map((k) => [k.name, k.type === 'BOOL' ? 'Bool' : 'Keyword']),
    );
    expect(declared).toEqual(registered);
    expect(Object.values(SearchAttribute).sort()).toEqual(Object.keys(registered).sort());
  });
});
