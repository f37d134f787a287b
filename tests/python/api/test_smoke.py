def test_meta_lists_what_erik_may_use(api):
    response = api.get("/v1/meta", "erik")
    assert response.status_code == 200, response.text
    names = {metric["name"] for metric in response.json()["metrics"]}
    assert "clv" in names and "total_spend" not in names
