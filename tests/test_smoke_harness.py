from tests.harness import Harness, members


async def test_post_goes_out_at_its_minute():
    h = await Harness.start(people=members("u01:小明"))
    await h.until("day 2 00:00")
    posts = h.room()
    assert [h.local(s) for s in posts] == ["01 19:30:00"]
    assert posts[0].text == "【开营仪式】欢迎来到Python 入门体验营！"
    await h.stop()
